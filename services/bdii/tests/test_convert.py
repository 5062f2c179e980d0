"""cloud-info-provider glue21json -> GLUE 2.1 entries under the site's domain."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fedcloud_bdii import synthetic
from fedcloud_bdii.convert import Converter
from fedcloud_bdii.errors import ProviderOutputError
from fedcloud_bdii.updater import normalize_dn

# The 1.2.0 output recorded in the reference material (2 VOs, 3 images).
SAMPLE = Path("/work/shared/reference/cip-sample.json")


def sample() -> dict:
    if SAMPLE.exists():
        return json.loads(SAMPLE.read_text())
    return synthetic.document(site="TEST-SITE", vos=2, images_per_vo=3)


def by_rdn_type(entries, rdn_type):
    return {dn: a for dn, a in entries.items() if dn.startswith(rdn_type + "=")}


def test_repeated_image_and_flavor_ids_become_one_entry_per_id_with_every_share():
    doc = sample()
    entries = Converter("TEST-SITE").convert(doc)
    images = by_rdn_type(entries, "GLUE2CloudComputingImageID")
    assert len(images) == len({i["ID"] for i in doc["CloudComputingImage"]})
    assert len(images) < len(doc["CloudComputingImage"])  # the input really repeats them
    for image in doc["CloudComputingImage"]:
        (attrs,) = [
            a for a in images.values() if a["GLUE2CloudComputingImageID"] == [image["ID"].encode()]
        ]
        for share in image["Associations"]["Share"]:
            assert share.encode() in attrs["GLUE2CloudComputingImageShareForeignKey"]
    assert len({normalize_dn(dn) for dn in entries}) == len(entries)


def test_entries_sit_under_the_cloud_group_of_the_site_domain():
    entries = Converter("TEST-SITE").convert(sample())
    assert all(dn.endswith("GLUE2DomainID=TEST-SITE,o=glue") for dn in entries)
    service = [dn for dn in entries if dn.startswith("GLUE2ServiceID=")]
    assert service[0].endswith(",GLUE2GroupID=cloud,GLUE2DomainID=TEST-SITE,o=glue")


def test_values_and_associations_map_to_glue2_attributes_and_foreign_keys():
    doc = synthetic.document(vos=2, images_per_vo=1, flavors=1, flavor_ram={0: 4096})
    entries = Converter("TEST-SITE").convert(doc)
    (flavor,) = by_rdn_type(entries, "GLUE2CloudComputingInstanceTypeID").values()
    assert flavor["GLUE2CloudComputingInstanceTypeRAM"] == [b"4096"]
    assert flavor["GLUE2EntityName"] == [b"m1.f0"]
    assert len(flavor["GLUE2CloudComputingInstanceTypeShareForeignKey"]) == 2
    policies = by_rdn_type(entries, "GLUE2PolicyID").values()
    (policy,) = [p for p in policies if p["GLUE2PolicyRule"] == [b"VO:vo0.example.org"]]
    assert b"GLUE2MappingPolicy" in policy["objectClass"]
    assert policy["GLUE2PolicyUserDomainForeignKey"] == [b"vo0.example.org"]
    assert policy["GLUE2MappingPolicyShareForeignKey"][0].endswith(
        b"_share_vo0.example.org_project0"
    )
    (manager,) = by_rdn_type(entries, "GLUE2ManagerID").values()
    assert manager["GLUE2ManagerServiceForeignKey"] == [synthetic.SERVICE.encode()]


def test_other_info_becomes_key_value_pairs():
    entries = Converter("TEST-SITE").convert(sample())
    (service,) = by_rdn_type(entries, "GLUE2ServiceID").values()
    info = service.get("GLUE2EntityOtherInfo", [])
    assert all(b"=" in v for v in info)


def _broken(mutate):
    doc = copy.deepcopy(synthetic.document())
    mutate(doc)
    return doc


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (
            _broken(lambda d: [f.update(RAM="lots") for f in d["CloudComputingInstanceType"]]),
            "integer",
        ),
        (_broken(lambda d: d["CloudComputingImage"][0].pop("ID")), "without a string ID"),
        (_broken(lambda d: d["CloudComputingImage"][0].update(Colour="red")), "unknown field"),
        (_broken(lambda d: d.pop("CloudComputingService")), "exactly one"),
        (_broken(lambda d: d["Share"][0].update(Associations={})), "no known"),
        (_broken(lambda d: d["CloudComputingEndpoint"][0].pop("URL")), "missing required"),
        # The same flavor ID with different values in two shares.
        (_broken(lambda d: d["CloudComputingInstanceType"][-1].update(CPU=64)), "repeats with"),
    ],
)
def test_malformed_documents_are_rejected_with_the_reason(doc, problem):
    with pytest.raises(ProviderOutputError, match=problem):
        Converter("TEST-SITE").convert(doc)


def test_output_that_is_not_json_is_rejected():
    with pytest.raises(ProviderOutputError, match="not JSON"):
        Converter("TEST-SITE").convert_text(b"Traceback (most recent call last):\n")
