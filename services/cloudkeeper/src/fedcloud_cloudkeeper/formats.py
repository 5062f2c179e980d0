"""Disk formats: what the bytes really are, and turning them into what Glance takes.

``hv:format`` in lists is often wrong (OVA announced as VMDK, raw as qcow2),
so the format is read from the content's magic bytes. Conversion runs
``qemu-img`` only when the detected format is not accepted; an OVA is a tar
whose OVF names the disk, and only that member is extracted. Each step
replaces its input, so at most two copies of an image exist at a time.
"""

from __future__ import annotations

import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

from fedcloud_cloudkeeper.errors import UnsupportedFormatError

KNOWN = ("qcow2", "raw", "vmdk", "vdi", "ova")
QEMU_IMG_TIMEOUT_S = 3600
_OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"


def detect(path: Path) -> str:
    with path.open("rb") as stream:
        head = stream.read(512)
    if head.startswith(b"QFI\xfb"):
        return "qcow2"
    if head.startswith(b"KDMV") or head.startswith(b"# Disk DescriptorFile"):
        return "vmdk"
    if len(head) >= 0x44 and head[0x40:0x44] == b"\x7f\x10\xda\xbe":
        return "vdi"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "ova"
    return "raw"


def prepare(
    path: Path, accepted: tuple[str, ...], image: str, workdir: Path | None = None
) -> tuple[Path, str]:
    """(file, disk_format) ready for Glance.

    ``path`` is consumed; unless ``workdir`` is given, then it is only read
    (it belongs to someone else, e.g. vmcatcher's cache) and new files go there.
    """
    original, out_dir = path, workdir or path.parent

    def drop(done_with: Path) -> None:
        if done_with != original or workdir is None:
            done_with.unlink(missing_ok=True)

    found = detect(path)
    if found == "ova":
        try:
            path = _extract_ova_disk(path, image, out_dir / f"{path.name}.disk")
        finally:
            drop(original)
        found = detect(path)
        if found == "ova":
            drop(path)
            raise UnsupportedFormatError(image=image, problem="OVA inside an OVA")
    if found in accepted:
        return path, found
    target_format = accepted[0]
    target = out_dir / f"{path.name}.{target_format}"
    try:
        done = subprocess.run(
            ["qemu-img", "convert", "-f", found, "-O", target_format, str(path), str(target)],
            capture_output=True,
            timeout=QEMU_IMG_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        target.unlink(missing_ok=True)
        raise UnsupportedFormatError(
            image=image, problem=f"qemu-img did not run: {error}"
        ) from None
    finally:
        drop(path)
    if done.returncode != 0:
        target.unlink(missing_ok=True)
        detail = " ".join(done.stderr.decode(errors="replace").split())[:300]
        raise UnsupportedFormatError(
            image=image, problem=f"qemu-img cannot read it as {found}: {detail}"
        )
    return target, target_format


def _extract_ova_disk(path: Path, image: str, target: Path) -> Path:
    try:
        with tarfile.open(path, "r:") as archive:
            members = archive.getmembers()
            if len(members) > 100:
                raise UnsupportedFormatError(image=image, problem="OVA with more than 100 members")
            ovfs = [m for m in members if m.name.endswith(".ovf") and m.isfile()]
            if len(ovfs) != 1:
                raise UnsupportedFormatError(
                    image=image, problem=f"OVA holds {len(ovfs)} OVF files"
                )
            reader = archive.extractfile(ovfs[0])
            assert reader is not None
            disk_name = _ovf_disk(reader.read(), image)
            by_name = {m.name.lstrip("./"): m for m in members if m.isfile()}
            member = by_name.get(disk_name)
            if member is None:
                raise UnsupportedFormatError(
                    image=image, problem=f"OVF names {disk_name!r}, not in OVA"
                )
            source = archive.extractfile(member)
            assert source is not None
            with target.open("wb") as out:
                while chunk := source.read(1024 * 1024):
                    out.write(chunk)
    except tarfile.TarError as error:
        target.unlink(missing_ok=True)
        raise UnsupportedFormatError(
            image=image, problem=f"OVA is not a valid tar: {error}"
        ) from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def _ovf_disk(ovf: bytes, image: str) -> str:
    """The file behind the first disk of the OVF's DiskSection."""
    try:
        root = ET.fromstring(ovf)
    except ET.ParseError as error:
        raise UnsupportedFormatError(image=image, problem=f"OVF is not XML: {error}") from None
    files = {
        f.get(f"{_OVF}id"): f.get(f"{_OVF}href")
        for f in root.iter(f"{_OVF}File")
        if f.get(f"{_OVF}href")
    }
    for disk in root.iter(f"{_OVF}Disk"):
        href = files.get(disk.get(f"{_OVF}fileRef"))
        if href:
            if "/" in href or href.startswith("."):
                raise UnsupportedFormatError(
                    image=image, problem=f"OVF disk path {href!r} not allowed"
                )
            return href
    raise UnsupportedFormatError(image=image, problem="OVF names no disk file")
