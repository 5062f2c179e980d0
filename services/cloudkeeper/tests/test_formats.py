"""Formats detected from content and converted with the real qemu-img."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from fedcloud_cloudkeeper import formats
from fedcloud_cloudkeeper.errors import UnsupportedFormatError

OVF = """<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
          xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:id="file1" ovf:href="{disk}"/></References>
  <DiskSection><Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="4"/></DiskSection>
</Envelope>
"""


def _disk(tmp_path: Path, fmt: str, name: str | None = None) -> Path:
    path = tmp_path / (name or f"disk.{fmt}")
    subprocess.run(
        ["qemu-img", "create", "-f", fmt, str(path), "4M"], check=True, capture_output=True
    )
    return path


def _info(path: Path) -> str:
    out = subprocess.run(
        ["qemu-img", "info", str(path)], check=True, capture_output=True, text=True
    )
    return next(
        line.split(":", 1)[1].strip()
        for line in out.stdout.splitlines()
        if line.startswith("file format")
    )


@pytest.mark.parametrize("fmt", ["qcow2", "raw", "vmdk", "vdi"])
def test_formats_are_read_from_the_bytes_not_the_name(tmp_path, fmt):
    disk = _disk(tmp_path, fmt, name="misleading.qcow2" if fmt != "qcow2" else "misleading.raw")
    assert formats.detect(disk) == fmt


def test_an_accepted_format_is_passed_through_untouched(tmp_path):
    disk = _disk(tmp_path, "qcow2", "download")
    assert formats.prepare(disk, ("qcow2", "raw"), "img") == (disk, "qcow2")


@pytest.mark.parametrize("fmt", ["vmdk", "vdi"])
def test_other_formats_are_converted_to_the_first_accepted(tmp_path, fmt):
    disk = _disk(tmp_path, fmt, "download")
    out, disk_format = formats.prepare(disk, ("qcow2", "raw"), "img")
    assert disk_format == "qcow2" and _info(out) == "qcow2"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def _ova(tmp_path: Path, ovf: str, members: dict[str, Path]) -> Path:
    (tmp_path / "x.ovf").write_text(ovf)
    ova = tmp_path / "download"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as archive:
        archive.add(tmp_path / "x.ovf", "x.ovf")
        for name, path in members.items():
            archive.add(path, name)
    return ova


def test_an_ova_yields_the_disk_its_ovf_names_converted(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    wanted = _disk(src, "vmdk")
    decoy = _disk(src, "vdi")
    ova = _ova(src, OVF.format(disk="disk.vmdk"), {"decoy.vdi": decoy, "disk.vmdk": wanted})
    assert formats.detect(ova) == "ova"
    out, disk_format = formats.prepare(ova, ("qcow2",), "img")
    assert disk_format == "qcow2" and _info(out) == "qcow2"
    assert not ova.exists()


@pytest.mark.parametrize("href", ["missing.vmdk", "../escape.vmdk"])
def test_an_ova_whose_ovf_names_no_usable_disk_is_refused(tmp_path, href):
    ova = _ova(tmp_path, OVF.format(disk=href), {"disk.vmdk": _disk(tmp_path, "vmdk")})
    (tmp_path / "disk.vmdk").unlink()
    (tmp_path / "x.ovf").unlink()
    with pytest.raises(UnsupportedFormatError):
        formats.prepare(ova, ("qcow2",), "img")
    assert list(tmp_path.iterdir()) == []


def test_bytes_qemu_img_cannot_read_are_unsupported_and_cleaned(tmp_path):
    fake = tmp_path / "download"
    fake.write_bytes(b"KDMV" + b"\0" * 1020)  # a vmdk header with nothing behind it
    with pytest.raises(UnsupportedFormatError, match="qemu-img"):
        formats.prepare(fake, ("qcow2",), "img")
    assert list(tmp_path.iterdir()) == []


def test_a_file_owned_by_someone_else_is_read_not_consumed(tmp_path):
    theirs = _disk(tmp_path, "vdi", "vmcatcher-cache-file")
    work = tmp_path / "work"
    work.mkdir()
    out, disk_format = formats.prepare(theirs, ("qcow2",), "img", workdir=work)
    assert theirs.exists() and out.parent == work and disk_format == "qcow2"
    kept = _disk(tmp_path, "qcow2", "accepted-as-is")
    assert formats.prepare(kept, ("qcow2",), "img", workdir=work) == (kept, "qcow2")
