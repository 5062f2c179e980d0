"""Images that would make qemu-img read this host's files, or that are no disk, are refused.

Made with the real qemu-img: a qcow2 on a backing file and a VMDK
descriptor naming an extent elsewhere are what an attacker would publish to
get /etc/shadow (or another image) into Glance. The limits qemu-img runs
under are read back from inside a qemu-img stand-in on PATH.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fedcloud_cloudkeeper import formats
from fedcloud_cloudkeeper.errors import UnsupportedFormatError


def _qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def test_a_qcow2_with_a_backing_file_is_refused_and_removed(tmp_path: Path) -> None:
    secret = tmp_path / "host-file.raw"
    secret.write_bytes(b"host secret\n" + b"\0" * (1 << 20))
    overlay = tmp_path / "download"
    _qemu_img("create", "-f", "qcow2", "-b", str(secret), "-F", "raw", str(overlay), "1M")
    with pytest.raises(UnsupportedFormatError, match=r"backing file \(.*host-file\.raw\)"):
        formats.prepare(overlay, ("raw",), "img")  # raw: it would have been converted
    assert not overlay.exists() and secret.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host-file.raw"]


def test_a_vmdk_descriptor_naming_an_external_extent_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "disk-flat.vmdk"
    outside.parent.mkdir()
    outside.write_bytes(b"\0" * (1 << 20))
    descriptor = tmp_path / "download"
    descriptor.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        'createType="monolithicFlat"\n\n'
        f'RW 2048 FLAT "{outside}" 0\n\n'
        'ddb.virtualHWVersion = "4"\nddb.geometry.cylinders = "2"\n'
        'ddb.geometry.heads = "16"\nddb.geometry.sectors = "63"\nddb.adapterType = "ide"\n'
    )
    assert formats.detect(descriptor) == "vmdk"
    with pytest.raises(UnsupportedFormatError, match="external extent"):
        formats.prepare(descriptor, ("qcow2",), "img")
    assert not descriptor.exists() and outside.exists()


def test_bytes_of_no_format_are_refused_unless_the_list_says_raw(tmp_path: Path) -> None:
    page = tmp_path / "download"
    page.write_bytes(b"<html><body>502 Bad Gateway</body></html>\n" * 100)
    assert formats.detect(page) == "unknown"
    with pytest.raises(UnsupportedFormatError, match="must say hv:format raw"):
        formats.prepare(page, ("qcow2", "raw"), "img", declared="qcow2")
    assert not page.exists()
    page.write_bytes(b"\x01\x02 a raw disk without a partition table" * 100)
    assert formats.prepare(page, ("qcow2", "raw"), "img", declared="raw") == (page, "raw")


def test_a_raw_disk_is_known_by_its_partition_table(tmp_path: Path) -> None:
    disk = tmp_path / "download"
    disk.write_bytes(b"\xeb\x63\x90" + b"\x01" * 507 + b"\x55\xaa" + b"\0" * 4096)
    assert formats.detect(disk) == "raw"


def test_qemu_img_runs_bounded_in_memory_and_cpu(tmp_path: Path, monkeypatch) -> None:
    real = subprocess.run(["which", "qemu-img"], capture_output=True, text=True).stdout.strip()
    limits = tmp_path / "limits"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "qemu-img"  # records its own limits, then is the real qemu-img
    stand_in.write_text(f'#!/bin/sh\ncat /proc/self/limits >> {limits}\nexec {real} "$@"\n')
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    disk = tmp_path / "download"
    subprocess.run([real, "create", "-f", "vdi", str(disk), "1M"], check=True, capture_output=True)
    _, disk_format = formats.prepare(disk, ("qcow2",), "img")
    assert disk_format == "qcow2"
    lines = [line for line in limits.read_text().splitlines() if "address space" in line]
    assert [line.split()[4] for line in lines] == [str(1 << 30), str(2 << 30)]  # info, convert
    cpu = [line.split()[3] for line in limits.read_text().splitlines() if "cpu time" in line]
    assert cpu == ["30", str(formats.QEMU_IMG_TIMEOUT_S)]
