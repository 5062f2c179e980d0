"""The planner alone: which change each Glance state calls for, and why."""

from __future__ import annotations

import datetime
import hashlib
import json

from fedcloud_cloudkeeper import imagelist
from fedcloud_cloudkeeper.plan import (
    CONTENT_PROPERTY,
    ID_PROPERTY,
    METADATA_PROPERTY,
    Managed,
    plan,
    targets,
)

from .conftest import image_entry, image_list

NOW = datetime.datetime.now(datetime.UTC)


def _wanted(*entries):
    document = image_list(list(entries))
    parsed = imagelist.parse(json.dumps(document).encode(), "test")
    return targets(parsed, "demo", "vo-demo", "")


def _in_glance(target, image_id="g1", status="active", created="2026-01-01", **changes):
    props = {**target.properties, **changes}
    return Managed(image_id, target.name, status, props, created)


def _entry(identifier="a", data=b"a" * 10, **overrides):
    return image_entry(identifier, data, "https://images.example.org", **overrides)


def _verbs(actions):
    return [(a.verb, a.identifier) for a in actions]


def test_an_image_in_sync_is_kept():
    wanted = _wanted(_entry())
    assert _verbs(plan(wanted, [_in_glance(wanted["a"])], NOW)) == [("keep", "a")]


def test_a_changed_title_is_a_metadata_update_not_a_new_upload():
    old = _wanted(_entry())["a"]
    wanted = _wanted(_entry(**{"dc:title": "New title"}))
    (action,) = plan(wanted, [_in_glance(old)], NOW)
    assert (action.verb, action.reason) == ("update", "metadata changed")


def test_a_changed_version_replaces_and_retires_the_old_image_after():
    old = _wanted(_entry())["a"]
    wanted = _wanted(_entry(**{"hv:version": "2"}))
    actions = plan(wanted, [_in_glance(old)], NOW)
    assert _verbs(actions) == [("replace", "a"), ("retire", "a")]
    assert actions[0].reason == "new version (hv:version changed)"


def test_a_changed_checksum_is_a_new_version_even_with_the_same_version_string():
    old = _wanted(_entry())["a"]
    data = b"b" * 10
    wanted = _wanted(_entry(data=data))
    assert wanted["a"].image.sha512 == hashlib.sha512(data).hexdigest()
    assert _verbs(plan(wanted, [_in_glance(old)], NOW))[0] == ("replace", "a")


def test_after_a_crash_between_upload_and_retire_the_newest_copy_stays():
    wanted = _wanted(_entry())
    older = _in_glance(wanted["a"], "g-old", created="2026-01-01")
    newer = _in_glance(wanted["a"], "g-new", created="2026-02-01")
    actions = plan(wanted, [newer, older], NOW)
    assert [(a.verb, a.existing.id) for a in actions] == [("retire", "g-old"), ("keep", "g-new")]


def test_unfinished_uploads_are_cleaned_first_and_never_counted_as_present():
    wanted = _wanted(_entry())
    queued = _in_glance(wanted["a"], "g-q", status="queued")
    assert _verbs(plan(wanted, [queued], NOW)) == [("clean", "a"), ("add", "a")]


def test_an_image_gone_from_the_list_or_expired_is_retired():
    kept, gone = _entry("kept"), _entry("gone")
    expiring = _entry("exp", **{"dc:date:expires": "2020-01-01T00:00:00Z"})
    before = _wanted(kept, gone, expiring)
    managed = [_in_glance(before[i], f"g-{i}") for i in ("kept", "gone", "exp")]
    actions = plan(_wanted(kept, expiring), managed, NOW)
    assert sorted((a.verb, a.identifier, a.reason) for a in actions) == [
        ("keep", "kept", "up to date"),
        ("retire", "exp", "image expired"),
        ("retire", "gone", "no longer in the list"),
    ]


def test_a_whole_list_going_retires_everything_with_the_reason():
    before = _wanted(_entry("x"), _entry("y"))
    managed = [_in_glance(t, f"g-{i}") for i, t in before.items()]
    actions = plan(None, managed, NOW, "list expired")
    assert {(a.verb, a.reason) for a in actions} == {("retire", "list expired")}


def test_a_deactivated_image_back_in_the_list_is_updated_to_reactivate_it():
    wanted = _wanted(_entry())
    (action,) = plan(wanted, [_in_glance(wanted["a"], status="deactivated")], NOW)
    assert action.verb == "update"


def test_the_properties_carry_what_consumers_read_and_our_bookkeeping():
    target = _wanted(_entry())["a"]
    props = target.properties
    assert props[ID_PROPERTY] == "a" and props["fedcloud_image_list"] == "demo"
    assert props["os_distro"] == "ubuntu" and props["APPLIANCE_RAM"] == "512"
    assert props[CONTENT_PROPERTY] == target.image.content_digest
    assert METADATA_PROPERTY in props and target.min_ram == 512
    assert json.loads(props["APPLIANCE_ATTRIBUTES"])["dc:identifier"] == "a"
