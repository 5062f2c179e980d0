"""Disk formats: what the bytes really are, and turning them into what Glance takes.

``hv:format`` in lists is often wrong (OVA announced as VMDK, raw as qcow2),
so the format is read from the content's magic bytes. Conversion runs
``qemu-img`` only when the detected format is not accepted; an OVA is a tar
whose OVF names the disk, and only that member is extracted. Each step
replaces its input, so at most two copies of an image exist at a time.

An image is untrusted input to qemu-img (and later to Nova):

- a qcow2 with a backing file, or a VMDK descriptor naming extents, would
  make qemu-img read other files of this host into the image: ``qemu-img
  info --output=json`` is read first, and such images are refused;
- bytes that are no known format are refused, unless the list declares
  them raw (a raw disk has no magic of its own);
- qemu-img runs under ``prlimit``, bounded in address space and CPU time,
  as Nova and Glance run it.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

from fedcloud_cloudkeeper.errors import UnsupportedFormatError

KNOWN = ("qcow2", "raw", "vmdk", "vdi", "ova")
QEMU_IMG_TIMEOUT_S = 3600
# qemu-img's bounds (prlimit): `info` as OpenStack bounds it (1 GiB, 30 s of
# CPU); `convert` gets 2 GiB and the conversion's whole time budget.
INFO_LIMITS = ("prlimit", f"--as={1 << 30}", "--cpu=30", "--")
CONVERT_LIMITS = ("prlimit", f"--as={2 << 30}", f"--cpu={QEMU_IMG_TIMEOUT_S}", "--")
RAW_DECLARED = ("raw", "img")
_OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"


def detect(path: Path) -> str:
    """The format the bytes say; "unknown" when they say none ("raw" needs evidence)."""
    with path.open("rb") as stream:
        head = stream.read(64 * 1024)
    if head.startswith(b"QFI\xfb"):
        return "qcow2"
    if head.startswith(b"KDMV") or head.startswith(b"# Disk DescriptorFile"):
        return "vmdk"
    if len(head) >= 0x44 and head[0x40:0x44] == b"\x7f\x10\xda\xbe":
        return "vdi"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "ova"
    if _looks_raw(head):
        return "raw"
    return "unknown"


def _looks_raw(head: bytes) -> bool:
    """A partition table, a file system, or an empty (sparse) disk."""
    boot_sector = len(head) >= 512 and head[510:512] == b"\x55\xaa"
    gpt = head[512:520] == b"EFI PART"
    ext = len(head) >= 1082 and head[1080:1082] == b"\x53\xef"
    xfs = head.startswith(b"XFSB")
    empty = len(head) > 0 and not head.strip(b"\0")
    return boot_sector or gpt or ext or xfs or empty


def inspect(path: Path, found: str, image: str) -> None:
    """Refuse an image that would make qemu-img read anything but this file."""
    if found not in ("qcow2", "vmdk", "vdi"):
        return
    try:
        done = subprocess.run(
            [*INFO_LIMITS, "qemu-img", "info", "--output=json", "-f", found, str(path)],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise UnsupportedFormatError(
            image=image, problem=f"qemu-img info failed: {error}"
        ) from None
    if done.returncode != 0:
        detail = " ".join(done.stderr.decode(errors="replace").split())[:300]
        raise UnsupportedFormatError(
            image=image, problem=f"qemu-img cannot read it as {found}: {detail}"
        )
    info = json.loads(done.stdout)
    backing = info.get("backing-filename") or info.get("full-backing-filename")
    if backing:
        raise UnsupportedFormatError(
            image=image,
            problem=f"{found} image with a backing file ({backing}): refused, images must be "
            "self-contained (ask the publisher for a flattened image)",
        )
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file"):
        raise UnsupportedFormatError(
            image=image,
            problem=f"qcow2 image with an external data file: refused ({specific['data-file']})",
        )
    for extent in specific.get("extents") or []:
        name = extent.get("filename")
        if name and Path(name).resolve() != path.resolve():
            raise UnsupportedFormatError(
                image=image,
                problem=f"VMDK that names an external extent ({name}): refused, images must "
                "be self-contained",
            )


def prepare(
    path: Path,
    accepted: tuple[str, ...],
    image: str,
    workdir: Path | None = None,
    declared: str = "",
) -> tuple[Path, str]:
    """(file, disk_format) ready for Glance.

    ``path`` is consumed; unless ``workdir`` is given, then it is only read
    (it belongs to someone else, e.g. vmcatcher's cache) and new files go there.
    ``declared`` is the list's hv:format: only it can make bytes of no known
    format a raw disk.
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
    if found == "unknown":
        if declared.lower() not in RAW_DECLARED:
            drop(path)
            raise UnsupportedFormatError(
                image=image,
                problem="its bytes are no disk format (qcow2, VMDK, VDI, OVA, or raw with a "
                "partition table or file system); if it is a raw disk, the list must say "
                "hv:format raw",
            )
        found = "raw"
    try:
        inspect(path, found, image)
    except UnsupportedFormatError:
        drop(path)
        raise
    if found in accepted:
        return path, found
    target_format = accepted[0]
    target = out_dir / f"{path.name}.{target_format}"
    try:
        done = subprocess.run(
            [
                *CONVERT_LIMITS,
                "qemu-img",
                "convert",
                "-f",
                found,
                "-O",
                target_format,
                str(path),
                str(target),
            ],
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
