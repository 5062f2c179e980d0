"""Which old image a list takes over, decided alone (the Glance side: test_adopt_glance)."""

from __future__ import annotations

import hashlib
import json

import pytest

from fedcloud_cloudkeeper import adopt, conventions, imagelist
from fedcloud_cloudkeeper.plan import Managed, targets

from .conftest import image_entry, image_list

DATA = b"image bytes" * 10
LIST_ID = "5b7c3f4e-0000-4000-8000-000000000001"  # image_list()'s dc:identifier


def _wanted(data=DATA):
    document = image_list([image_entry("a", data, "https://images.example.org")])
    return targets(imagelist.parse(json.dumps(document).encode(), "test"), "demo", "vo-demo", "")


def _atrope(image_id="old", tags=("atrope",), status="active", **props):
    values = {"tags": list(tags), "appdb_id": "a", "image_list": "demo",
              "image_hash": "sha512:" + hashlib.sha512(DATA).hexdigest()}  # fmt: skip
    return Managed(image_id, "Image a", status, values | props)


def _ckos(image_id="old", status="active", **props):
    attributes = json.dumps({"sl:checksum:sha512": hashlib.sha512(DATA).hexdigest()})
    values = {"APPLIANCE_ID": "a", "APPLIANCE_IMAGE_LIST_ID": LIST_ID,
              "APPLIANCE_STATUS": "ACTIVE", "APPLIANCE_ATTRIBUTES": attributes}  # fmt: skip
    return Managed(image_id, "Image a", status, values | props)


def _match(mode, *foreign, managed=(), wanted=None):
    return adopt.match(mode, "demo", LIST_ID, wanted or _wanted(), list(managed), list(foreign))


@pytest.mark.parametrize("tags", [("atrope",), ("atrope-catchall",), ("other", "atrope-x")])
def test_atropes_tag_or_a_configured_atrope_tag_marks_its_images(tags):
    assert set(_match("atrope", _atrope(tags=tags)).adopted) == {"a"}


def test_an_image_with_another_tag_or_another_lists_name_is_not_atropes():
    assert _match("atrope", _atrope(tags=("glancepush",))).adopted == {}
    assert _match("atrope", _atrope(image_list="other")).adopted == {}


@pytest.mark.parametrize(
    "props",
    [
        {"image_hash": "sha512:" + hashlib.sha512(DATA).hexdigest()},  # EGI's fork
        {"image_hash": None, "sha512": hashlib.sha512(DATA).hexdigest()},  # atrope 2.0
        {
            "image_hash": None,
            "os_hash_algo": "sha512",
            "os_hash_value": hashlib.sha512(DATA).hexdigest(),
        },  # Glance's own
    ],
)
def test_same_content_is_told_by_any_of_the_sha512s(props):
    (adopted,) = _match("atrope", _atrope(**props)).adopted.values()
    assert adopted.same_content
    other = _match("atrope", _atrope(**props), wanted=_wanted(b"other bytes"))
    assert not other.adopted["a"].same_content


def test_cloudkeeper_os_images_are_known_by_the_lists_identifier_and_not_when_eol():
    assert _match("cloudkeeper-os", _ckos()).adopted["a"].same_content
    assert _match("cloudkeeper-os", _ckos(APPLIANCE_IMAGE_LIST_ID="another")).adopted == {}
    assert _match("cloudkeeper-os", _ckos(APPLIANCE_STATUS="EOL")).adopted == {}
    assert _match("cloudkeeper-os", _ckos(status="deactivated")).adopted == {}


def test_a_mode_adopts_only_its_tools_images_and_auto_both():
    assert _match("atrope", _ckos()).adopted == {}
    assert _match("cloudkeeper-os", _atrope()).adopted == {}
    found = _match("auto", _atrope("x"), _ckos("y"))
    assert found.adopted == {} and [i.id for _, i in found.ambiguous["a"].images] == ["x", "y"]


def test_an_ambiguous_entry_is_left_out_of_the_plan():
    found = _match("atrope", _atrope("x"), _atrope("y", tags=("atrope-catchall",)))
    assert (
        found.wanted(_wanted()) == {}
        and "2 old images claim it (x (atrope), y (atrope))" in (found.problems()[0])
    )


def test_an_entry_already_managed_adopts_nothing():
    wanted = _wanted()
    ours = Managed("mine", "Image a", "active", dict(wanted["a"].properties))
    assert _match("auto", _atrope(), managed=[ours]).adopted == {}


def test_an_appliances_own_image_under_another_tag_is_no_old_tools():
    props = dict(_wanted()["a"].properties)
    assert conventions.placed_by(props | {"tags": ["atrope"]}) is None


def test_orphans_are_the_old_images_of_lists_not_subscribed():
    kept, gone = _atrope("k"), _atrope("g", image_list="gone")
    ckos_gone = _ckos("c", APPLIANCE_IMAGE_LIST_ID="gone-id")
    found = adopt.orphans(["auto"], {"demo"}, {LIST_ID}, [kept, gone, ckos_gone, _ckos("d")])
    assert [(o.tool, o.list, o.image.id) for o in found] == [
        ("atrope", "gone", "g"),
        ("cloudkeeper-os", "gone-id", "c"),
    ]
    assert adopt.orphans(["atrope"], {"demo"}, {LIST_ID}, [gone, ckos_gone])[0].image.id == "g"


def test_an_old_image_another_project_owns_is_held_with_the_fix():
    found = adopt.match("cloudkeeper-os", "demo", LIST_ID, _wanted(), [], [], [_ckos("vo-img")],
                        "vo-demo")  # fmt: skip
    assert found.adopted == {} and found.wanted(_wanted()) == {}
    (problem,) = found.problems()
    assert "vo-img (cloudkeeper-os) is owned by project vo-demo" in problem
    assert "openstack image set --project PROJECT vo-img" in problem
