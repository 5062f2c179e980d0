"""Synthetic cloud-info-provider documents, shaped like 1.2.0's glue21json.

Used by the tests and by bench/bdii: ``vos`` shares, each with its own
``images_per_vo`` private images (so the tree grows as VOs x images), and
``flavors`` public flavors that every share repeats with the same IDs, as
cloud-info-provider does. ``flavor_ram`` lets a test change one flavor;
``stamp`` is the CreationTime of every object, as in one provider run.
"""

from __future__ import annotations

ENDPOINT = "https://cloud.example.org:5000/v3"
SERVICE = f"{ENDPOINT}_cloud.compute"
MANAGER = f"{SERVICE}_manager"
EP_ID = f"{ENDPOINT}_OpenStack_v3"


def document(
    site: str = "TEST-SITE",
    vos: int = 2,
    images_per_vo: int = 3,
    flavors: int = 2,
    flavor_ram: dict[int, int] | None = None,
    stamp: str = "2026-11-22T00:00:00+00:00",
    revision: int = 0,
) -> dict:
    """``revision`` > 0 changes every object (an OtherInfo value), for "all modified"."""
    flavor_ram = flavor_ram or {}
    common: dict = {"Validity": 43200, "CreationTime": stamp}
    if revision:
        common["OtherInfo"] = {"revision": str(revision)}
    doc: dict[str, list] = {
        "CloudComputingService": [
            {
                "ID": SERVICE,
                **common,
                "Name": f"Cloud Compute service at {site}",
                "Associations": {"AdminDomain": [site]},
                "Type": "org.cloud.iaas",
                "QualityLevel": "production",
                "Capability": ["executionmanagement.dynamicvmdeploy"],
                "TotalVM": 0,
            }
        ],
        "CloudComputingManager": [
            {
                "ID": MANAGER,
                **common,
                "Associations": {"CloudComputingService": [SERVICE]},
                "InstanceMaxCPU": 8,
            }
        ],
        "CloudComputingEndpoint": [
            {
                "ID": EP_ID,
                **common,
                "Associations": {"CloudComputingService": [SERVICE]},
                "QualityLevel": "production",
                "InterfaceName": "org.openstack.nova",
                "HealthState": "ok",
                "ServingState": "production",
                "URL": ENDPOINT,
            }
        ],
        "CloudComputingImage": [],
        "CloudComputingInstanceType": [],
        "Share": [],
        "MappingPolicy": [],
        "AccessPolicy": [],
    }
    for v in range(vos):
        vo = f"vo{v}.example.org"
        share = f"{EP_ID}_share_{vo}_project{v}"
        doc["Share"].append(
            {
                "ID": share,
                **common,
                "Name": f"{vo} share",
                "Associations": {
                    "CloudComputingService": [SERVICE],
                    "CloudComputingEndpoint": [EP_ID],
                },
                "ProjectID": f"project{v}",
                "MaxVM": 10,
            }
        )
        doc["MappingPolicy"].append(
            {
                "ID": f"{share}_Policy",
                **common,
                "Associations": {"Share": [share], "PolicyUserDomain": [vo]},
                "Rule": [f"VO:{vo}"],
                "Scheme": "org.glite.standard",
            }
        )
        owners = {"Share": [share], "CloudComputingManager": [MANAGER]}
        for i in range(images_per_vo):
            doc["CloudComputingImage"].append(
                {
                    "ID": f"img-{v}-{i}",
                    **common,
                    "Name": f"Image {i} of {vo}",
                    "Associations": owners,
                    "MarketplaceURL": f"https://registry.example.org/{vo}/img{i}:latest",
                    "OSName": "ubuntu",
                    "OSVersion": "22.04",
                    "OSPlatform": "x86_64",
                }
            )
        for f in range(flavors):
            doc["CloudComputingInstanceType"].append(
                {
                    "ID": f"flavor-{f}",
                    **common,
                    "Name": f"m1.f{f}",
                    "Associations": owners,
                    "CPU": 1 + f % 8,
                    "RAM": flavor_ram.get(f, 1024),
                    "Disk": 10,
                }
            )
    doc["AccessPolicy"].append(
        {
            "ID": f"{EP_ID}_policy",
            **common,
            "Associations": {"CloudComputingEndpoint": [EP_ID]},
            "Rule": [f"VO:vo{v}.example.org" for v in range(vos)],
            "Scheme": "org.glite.standard",
        }
    )
    return doc
