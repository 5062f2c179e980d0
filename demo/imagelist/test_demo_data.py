"""The demo's data is trusted by the appliance's own code, over the real stand-in.

``demo/bin/demo-data`` runs for real (openssl, qemu-img) into a temporary
directory, ``imagelist_server.py`` serves it over HTTPS on a port in
45000-45999, and cloudkeeper's own fetch/verify/download code -- the code
the appliance runs -- must accept the list and the images with the CA
directory and endorser that ``demo-data.json`` names. The host certificate
is checked with ``openssl verify`` and by the AMS stand-in's S/MIME check.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509

from fedcloud_accounting.smime import load_signer
from fedcloud_cloudkeeper import fetch
from fedcloud_cloudkeeper.config import Config
from fedcloud_cloudkeeper.errors import FetchError, ImageListUntrustedError
from fedcloud_cloudkeeper.imagelist import ImageList
from fedcloud_cloudkeeper.job import Job
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO_DATA = ROOT / "demo" / "bin" / "demo-data"
SERVER = ROOT / "demo" / "imagelist" / "imagelist_server.py"
AMS_STANDIN = ROOT / "demo" / "accounting-endpoint" / "ams_standin.py"
HOSTS = ["127.0.0.1", "172.17.0.1"]
TOKEN = "demo-appdb-token"
PORTS = range(45000, 46000)  # this suite's own


@dataclasses.dataclass
class Demo:
    out: Path
    data: dict[str, Any]
    log: Path

    @property
    def ca_dir(self) -> str:
        return self.data["ca"]["ca_dir"]


def _demo_data(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    hosts = [arg for host in HOSTS for arg in ("--host", host)]
    return subprocess.run(
        [sys.executable, str(DEMO_DATA), str(out), *hosts, *args],
        check=True,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """Fresh demo data, served by the stand-in (lists behind the token)."""
    work = tmp_path_factory.mktemp("demo-data")
    port = free_port(PORTS)
    _demo_data(work / "out", "--list-url-base", f"https://127.0.0.1:{port}")
    data = json.loads((work / "out" / "demo-data.json").read_text())
    log = work / "server.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, str(SERVER), "--root", data["image_list"]["root"],
             "--port", str(port), "--cert", data["server"]["cert"],
             "--key", data["server"]["key"], "--host", "127.0.0.1", "--token", TOKEN],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while "listening" not in log.read_text():
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the image list stand-in did not start"
            time.sleep(0.05)
        yield Demo(work / "out", data, log)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _config(demo: Demo, tmp_path: Path, endorser: dict[str, str] | None = None) -> Config:
    """cloudkeeper's settings for the demo list, validated by the service's own model.

    ``endorser`` is in appliance.yaml's ``{dn, ca}`` form, as demo-data.json gives it.
    """
    token_file = tmp_path / "appdb-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    endorser = endorser or demo.data["endorser"]
    return Config.model_validate(
        {
            "lists": [
                {
                    "name": demo.data["image_list"]["name"],
                    "url": demo.data["image_list"]["url"],
                    "endorser_dn": endorser["dn"],
                    "endorser_ca": endorser["ca"],
                    "vo": demo.data["vo"],
                    "token_file": str(token_file),
                }
            ],
            "ca_path": demo.ca_dir,
            "https_verify": demo.ca_dir,
            "state_dir": str(tmp_path / "state"),
            "spool_dir": str(tmp_path / "spool"),
            "cache_dir": str(tmp_path / "cache"),
        }
    )


def _verify(config: Config) -> ImageList:
    # `cloudkeeper verify`'s path; verifying never touches Glance.
    job = Job(config, glance=None)  # type: ignore[arg-type]
    return job.verify(config.lists[0])


def _openssl_verify(*args: str) -> str:
    done = subprocess.run(["openssl", "verify", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _load_ams_standin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ams_standin", AMS_STANDIN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cloudkeeper_trusts_the_list_fetched_from_the_standin_with_the_token(demo, tmp_path):
    trusted = _verify(_config(demo, tmp_path))
    assert trusted.vo == "fedcloud.egi.eu"
    assert trusted.endorser.dn == demo.data["endorser"]["dn"]
    assert trusted.endorser.ca == demo.data["endorser"]["ca"]
    assert trusted.identifier == demo.data["image_list"]["identifier"]
    assert trusted.expires > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=300)
    listed = {(i.identifier, i.title, i.size, i.sha512, i.uri) for i in trusted.images}
    assert listed == {
        (i["identifier"], i["title"], i["size"], i["sha512"], i["url"]) for i in demo.data["images"]
    }


def test_cloudkeeper_refuses_the_list_for_another_endorser(demo, tmp_path):
    wrong = {"dn": demo.data["host"]["dn"], "ca": demo.data["ca"]["dn"]}
    with pytest.raises(ImageListUntrustedError, match="not the configured endorser"):
        _verify(_config(demo, tmp_path, endorser=wrong))


def test_the_list_needs_the_token_and_images_do_not(demo):
    http = fetch.session(demo.ca_dir)
    with pytest.raises(FetchError, match="HTTP 401"):
        fetch.fetch_list(http, demo.data["image_list"]["url"], None, 10)
    assert http.head(demo.data["images"][0]["url"], timeout=10).status_code == 200


def test_every_image_downloads_through_the_standin_with_its_sha512(demo, tmp_path):
    downloader = fetch.Downloader(fetch.session(demo.ca_dir), retries=0, reserve_bytes=0)
    for image in demo.data["images"]:
        got = downloader.download(
            image["identifier"], image["url"], image["size"], image["sha512"],
            tmp_path / image["identifier"],
        )  # fmt: skip
        assert hashlib.sha512(got.read_bytes()).hexdigest() == image["sha512"]
        assert got.read_bytes() == Path(image["file"]).read_bytes()


def test_a_download_resumes_with_range_as_cloudkeeper_sends_it(demo):
    image = demo.data["images"][1]
    whole = Path(image["file"]).read_bytes()
    reply = fetch.session(demo.ca_dir).get(
        image["url"], headers={"Range": "bytes=4096-"}, timeout=10
    )
    assert reply.status_code == 206
    assert reply.headers["Content-Range"] == f"bytes 4096-{len(whole) - 1}/{len(whole)}"
    assert reply.content == whole[4096:]
    assert f'"GET /images/{Path(image["file"]).name}" 206' in demo.log.read_text()


def test_the_host_certificate_is_a_tls_client_and_smime_signer_of_the_ca(demo):
    certs, host = demo.ca_dir, demo.data["host"]
    for purpose in ("sslclient", "smimesign"):
        _openssl_verify("-CApath", certs, "-crl_check", "-purpose", purpose, host["cert"])
    assert os.stat(host["key"]).st_mode & 0o777 == 0o600
    assert os.stat(host["cert"]).st_mode & 0o777 == 0o644
    assert os.stat(demo.data["endorser_files"]["key"]).st_mode & 0o777 == 0o600


def test_the_ams_standin_accepts_what_the_sender_signs_with_the_host_certificate(demo):
    ams = _load_ams_standin()
    host = demo.data["host"]
    signer = load_signer(Path(host["cert"]), Path(host["key"]), datetime.timedelta(days=30))
    allowed = {
        line.strip()
        for line in Path(demo.data["ams"]["allowed_dns"]).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    ca = x509.load_pem_x509_certificate(Path(demo.data["ca"]["cert"]).read_bytes())
    dn, body = ams.verify(signer.sign(b"APEL-cloud-message: v0.4\n%%\n"), ca, allowed)
    assert dn == host["dn"]
    assert body == b"APEL-cloud-message: v0.4\n%%\n"


def test_the_standin_certificates_name_what_they_serve(demo):
    ca = demo.data["ca"]["cert"]
    for ip in HOSTS:
        _openssl_verify("-CAfile", ca, "-purpose", "sslserver", "-verify_ip", ip,
                        demo.data["server"]["cert"])  # fmt: skip
    _openssl_verify("-CAfile", ca, "-purpose", "sslserver", "-verify_hostname", "localhost",
                    demo.data["server"]["cert"])  # fmt: skip
    _openssl_verify("-CAfile", ca, "-purpose", "sslserver", "-verify_hostname", "goc.egi.eu",
                    demo.data["gocdb"]["cert"])  # fmt: skip
    (service,) = json.loads(Path(demo.data["gocdb"]["services"]).read_text())
    assert service["type"] == "org.openstack.nova"
    assert service["site"] == demo.data["site"]
    assert service["url"] == demo.data["keystone_url"] == "http://127.0.0.1:5000/v3"


def test_a_second_run_keeps_the_data_and_other_hosts_remake_it(tmp_path):
    out = tmp_path / "out"
    _demo_data(out)
    first = json.loads((out / "demo-data.json").read_text())
    assert first["list_url_base"] == "https://127.0.0.1:8843"
    host_cert = (out / "grid-security" / "hostcert.pem").read_bytes()
    again = _demo_data(out)
    assert "up to date" in again.stdout
    assert (out / "grid-security" / "hostcert.pem").read_bytes() == host_cert
    _demo_data(out, "--host", "demo.example.org")
    remade = json.loads((out / "demo-data.json").read_text())
    assert remade["hosts"] == [*HOSTS, "demo.example.org"]
    assert "demo.example.org" in remade["server"]["names"]
    assert (out / "grid-security" / "hostcert.pem").read_bytes() != host_cert
    assert all((out / path).exists() for path in remade["files"])
