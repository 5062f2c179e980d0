"""The configuration the appliance renders, and cloudkeeper's image-lists.conf."""

from __future__ import annotations

import json

import pytest

from fedcloud_cloudkeeper.config import Config
from fedcloud_cloudkeeper.errors import ConfigError


def test_the_rendered_json_becomes_a_typed_config(tmp_path):
    path = tmp_path / "cloudkeeper.json"
    path.write_text(json.dumps({
        "lists": [{"name": "fedcloud", "url": "https://lists.example.org/fedcloud.list",
                   "endorser": {"dn": "/CN=signer", "ca": "/CN=ca"}, "project": "vo-fedcloud",
                   "token_file": "/etc/secrets/token"}],
        "ca_path": "/certs", "accepted_formats": ["raw"], "vo_projects": {"a.vo": "vo-a"},
    }))  # fmt: skip
    config = Config.from_file(path)
    (source,) = config.lists
    assert (source.endorser_dn, source.endorser_ca) == ("/CN=signer", "/CN=ca")
    assert str(source.token_file) == "/etc/secrets/token"
    assert str(config.ca_path) == "/certs" and config.accepted_formats == ("raw",)


def test_unknown_settings_are_named(tmp_path):
    with pytest.raises(ConfigError, match="ca_dir: unknown setting"):
        Config.from_dict({"lists": [], "ca_dir": "/x"})


def test_image_lists_conf_lines_become_lists_with_the_token_out_of_the_url(tmp_path):
    conf = tmp_path / "image-lists.conf"
    conf.write_text(
        "# subscribed lists\n"
        "https://S3CRET:x-oauth-basic@vmcaster.example.org/store/vo/fedcloud.egi.eu/image.list\n"
        "\n"
        "https://vmcaster.example.org/store/vo/vo.demo/image.list  # public\n"
    )
    config = Config.from_dict({"lists": [], "image_lists_conf": str(conf),
                               "endorser_dn": "/CN=signer", "endorser_ca": "/CN=ca"})  # fmt: skip
    first, second = config.lists
    assert first.url == "https://vmcaster.example.org/store/vo/fedcloud.egi.eu/image.list"
    assert first.token == "S3CRET" and "S3CRET" not in repr(first)
    assert second.token is None and first.name != second.name
    assert first.endorser_dn == "/CN=signer"


def test_image_lists_conf_needs_an_endorser_to_trust(tmp_path):
    conf = tmp_path / "image-lists.conf"
    conf.write_text("https://vmcaster.example.org/x.list\n")
    with pytest.raises(ConfigError, match="endorser_dn and endorser_ca"):
        Config.from_dict({"lists": [], "image_lists_conf": str(conf)})


def test_cleanup_drops_cache_files_no_pending_request_needs(tmp_path):
    from fedcloud_cloudkeeper.job import Job
    from fedcloud_cloudkeeper.spool import Spool

    class NoGlance:
        def managed(self):
            return []

    config = Config(lists=(), state_dir=tmp_path / "state", spool_dir=tmp_path / "spool",
                    cache_dir=tmp_path / "cache")  # fmt: skip
    wanted = tmp_path / "cache" / "demo" / "img-1"
    leftover = tmp_path / "cache" / "demo" / "img-2.part"
    in_use = tmp_path / "cache" / "work" / "converting"
    for path in (wanted, leftover, in_use):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    Spool(config.spool_dir).put({"kind": "sync-list", "list": "demo",
                                 "files": {"img-1": {"path": str(wanted)}}})  # fmt: skip
    job = Job(config, NoGlance())
    assert job.cleanup(dry_run=True).lists[0].reason.startswith("1 stale file")
    assert leftover.exists()
    job.cleanup()
    assert wanted.exists() and in_use.exists() and not leftover.exists()


def test_a_request_the_backend_cannot_apply_is_set_aside_not_retried_forever(tmp_path):
    from fedcloud_cloudkeeper.backend import Backend
    from fedcloud_cloudkeeper.spool import Spool

    spool = Spool(tmp_path / "spool")
    spool.put({"kind": "no-such-kind", "list": "demo"})
    (spool.requests / "garbage.json").write_text("{not json")
    backend = Backend(glance=None, spool=spool, state_dir=tmp_path / "state")
    assert backend.drain() == {"requests": 1, "failed": 2}
    assert spool.pending() == [] and len(list(spool.failed.iterdir())) == 2


def test_an_unreadable_token_file_fails_that_list_not_the_run(tmp_path):
    from fedcloud_cloudkeeper.config import ListSource
    from fedcloud_cloudkeeper.job import Job

    class NoGlance:
        def managed(self):
            return []

    token = tmp_path / "token"
    token.write_text("s3cr3t")
    token.chmod(0o644)
    source = ListSource(name="a", url="https://lists.example.org/a", endorser_dn="/CN=s",
                        endorser_ca="/CN=ca", token_file=token)  # fmt: skip
    config = Config(lists=(source,), state_dir=tmp_path / "state", spool_dir=tmp_path / "spool",
                    cache_dir=tmp_path / "cache")  # fmt: skip
    report = Job(config, NoGlance()).sync()
    (outcome,) = report.lists
    assert report.failed and outcome.state == "error" and "chmod 600" in outcome.reason
    assert "s3cr3t" not in outcome.reason
    with pytest.raises(ConfigError, match="no such list"):
        Job(config, NoGlance()).sync(only="b")
