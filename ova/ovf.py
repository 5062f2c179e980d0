"""Write the OVF 1.0 descriptor and the manifest for the appliance's OVA.

Sizes and capacities come from the real files, so the descriptor never
disagrees with the disks it ships. The manifest uses SHA-1, the digest OVF
1.x defines (DSP0243 1.1, section 5.1); hypervisors and COT check it.

    python3 ova/ovf.py NAME VERSION SYSTEM.vmdk:CAPACITY DATA.vmdk:CAPACITY
"""

from __future__ import annotations

import hashlib
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

OVF = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
NAMESPACES = {"ovf": OVF, "rasd": RASD, "vssd": VSSD}
CPUS = 2
MEMORY_MB = 4096
DEBIAN_64 = "96"  # CIM OperatingSystem value for Debian 64-bit


def _q(prefix: str, tag: str) -> str:
    return f"{{{NAMESPACES[prefix]}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    prefix, name = tag.split(":")
    element = ET.SubElement(
        parent,
        _q(prefix, name),
        {_q(*k.split(":")) if ":" in k else k: v for k, v in attrs.items()},
    )
    if text is not None:
        element.text = text
    return element


def _item(hardware: ET.Element, **fields: str) -> None:
    item = _sub(hardware, "ovf:Item")
    for key in sorted(fields):  # rasd elements must be in alphabetical order
        _sub(item, f"rasd:{key}", fields[key])


def descriptor(name: str, version: str, disks: list[tuple[Path, int]]) -> ET.ElementTree:
    for prefix, uri in NAMESPACES.items():
        ET.register_namespace(prefix, uri)
    envelope = ET.Element(_q("ovf", "Envelope"), {_q("ovf", "version"): "1.0"})
    references = _sub(envelope, "ovf:References")
    disk_section = _sub(envelope, "ovf:DiskSection")
    _sub(disk_section, "ovf:Info", "Virtual disks: the system, and the image store (/image_data)")
    for index, (path, capacity) in enumerate(disks, start=1):
        _sub(
            references,
            "ovf:File",
            **{
                "ovf:id": f"file{index}",
                "ovf:href": path.name,
                "ovf:size": str(path.stat().st_size),
            },
        )
        _sub(
            disk_section,
            "ovf:Disk",
            **{
                "ovf:diskId": f"disk{index}",
                "ovf:fileRef": f"file{index}",
                "ovf:capacity": str(capacity),
                "ovf:capacityAllocationUnits": "byte",
                "ovf:format": STREAM_OPTIMIZED,
            },
        )
    networks = _sub(envelope, "ovf:NetworkSection")
    _sub(networks, "ovf:Info", "The network the appliance is attached to")
    _sub(
        _sub(networks, "ovf:Network", **{"ovf:name": "VM Network"}),
        "ovf:Description",
        "Reaches the cloud's APIs and is reached on port 2170 (site BDII)",
    )

    system = _sub(envelope, "ovf:VirtualSystem", **{"ovf:id": name})
    _sub(system, "ovf:Info", "The EGI FedCloud appliance")
    _sub(system, "ovf:Name", name)
    product = _sub(system, "ovf:ProductSection")
    _sub(product, "ovf:Info", "Product information")
    _sub(product, "ovf:Product", "FedCloud appliance")
    _sub(product, "ovf:Vendor", "EGI FedCloud appliance developers")
    _sub(product, "ovf:Version", version)
    _sub(product, "ovf:FullVersion", version)
    os_section = _sub(system, "ovf:OperatingSystemSection", **{"ovf:id": DEBIAN_64})
    _sub(os_section, "ovf:Info", "Debian GNU/Linux 12 (bookworm), 64-bit")
    _sub(os_section, "ovf:Description", "Debian GNU/Linux 12 (64-bit)")

    hardware = _sub(system, "ovf:VirtualHardwareSection")
    _sub(hardware, "ovf:Info", f"{CPUS} vCPUs, {MEMORY_MB} MB, SCSI disks, one NIC")
    settings = _sub(hardware, "ovf:System")
    for key, value in (
        ("ElementName", "Virtual Hardware Family"),
        ("InstanceID", "0"),
        ("VirtualSystemIdentifier", name),
        ("VirtualSystemType", "vmx-10"),
    ):
        _sub(settings, f"vssd:{key}", value)
    _item(
        hardware,
        AllocationUnits="hertz * 10^6",
        Description="Number of virtual CPUs",
        ElementName=f"{CPUS} virtual CPUs",
        InstanceID="1",
        ResourceType="3",
        VirtualQuantity=str(CPUS),
    )
    _item(
        hardware,
        AllocationUnits="byte * 2^20",
        Description="Memory size",
        ElementName=f"{MEMORY_MB} MB of memory",
        InstanceID="2",
        ResourceType="4",
        VirtualQuantity=str(MEMORY_MB),
    )
    _item(
        hardware,
        Address="0",
        Description="SCSI controller",
        ElementName="SCSI controller 0",
        InstanceID="3",
        ResourceSubType="lsilogic",
        ResourceType="6",
    )
    for index in range(1, len(disks) + 1):
        _item(
            hardware,
            AddressOnParent=str(index - 1),
            ElementName=f"Hard disk {index}",
            HostResource=f"ovf:/disk/disk{index}",
            InstanceID=str(3 + index),
            Parent="3",
            ResourceType="17",
        )
    _item(
        hardware,
        AddressOnParent="7",
        AutomaticAllocation="true",
        Connection="VM Network",
        Description="E1000 ethernet adapter",
        ElementName="Network adapter 1",
        InstanceID=str(4 + len(disks)),
        ResourceSubType="E1000",
        ResourceType="10",
    )
    ET.indent(envelope)
    return ET.ElementTree(envelope)


def manifest(files: list[Path]) -> str:
    lines = []
    for path in files:
        digest = hashlib.sha1()  # OVF 1.x manifests are SHA-1 by spec
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        lines.append(f"SHA1({path.name})= {digest.hexdigest()}\n")
    return "".join(lines)


def main(argv: list[str]) -> int:
    name, version, *disk_args = argv
    disks = [(Path(a.rsplit(":", 1)[0]), int(a.rsplit(":", 1)[1])) for a in disk_args]
    out = disks[0][0].parent
    ovf_path = out / f"{name}.ovf"
    descriptor(name, version, disks).write(ovf_path, encoding="utf-8", xml_declaration=True)
    (out / f"{name}.mf").write_text(manifest([ovf_path, *(d for d, _ in disks)]))
    print(ovf_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
