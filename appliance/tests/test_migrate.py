"""``appliance migrate`` on sample installs of cloudkeeper and of atrope.

Each tree under migrate_trees/ is an /etc as the old tools leave it (with
cASO and cloud-info-provider beside them). The printed appliance.yaml must
load with the appliance's own loader and render, its secrets must be files
in the secrets directory, no secret's value may appear in the output, and
every key left behind must be named.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fedcloud_appliance import cli, loader, render
from fedcloud_common import settings
from fedcloud_common.settings.cloudkeeper import CloudkeeperSettings

TREES = Path(__file__).parent / "migrate_trees"
SECRETS = {
    "cloudkeeper": ["CK-T0KEN-fedcloud", "CK-PASSW0RD-secret", "CASO-PASSW0RD-secret"],
    "atrope": ["AT-T0KEN-fedcloud", "AT-APPCRED-secret", "CASO-AT-PASSW0RD-secret"],
}


def _migrate(tree: str, config_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    code = cli.main(["migrate", "--root", str(TREES / tree), "--config-dir", str(config_dir),
                     "--hostname", "appliance.example.org"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    (config_dir / "appliance.yaml").write_text(out)
    return out, err


@pytest.mark.parametrize("tree", ["cloudkeeper", "atrope"])
def test_the_printed_file_loads_renders_and_never_shows_a_secret(tree, tmp_path, capsys):
    out, err = _migrate(tree, tmp_path, capsys)
    for value in SECRETS[tree]:
        assert value not in out and value not in err
    # Each secret is a root-only file in the secrets directory the services mount.
    secrets = tmp_path / "secrets"
    stored = {path.read_text().strip() for path in secrets.iterdir()}
    assert stored == set(SECRETS[tree])
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in secrets.iterdir())
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    # Valid under the loader; the only files it misses are the host certificate's.
    config = loader.load(tmp_path / "appliance.yaml", check_files=False)
    with pytest.raises(loader.ConfigError) as problems:
        loader.load(tmp_path / "appliance.yaml")
    assert [p.split(":")[0] for p in problems.value.problems] == [
        "accounting.sender.cert",
        "accounting.sender.key",
    ]
    render.render_all(config, tmp_path / "rendered")
    rendered = settings.load(CloudkeeperSettings, tmp_path / "rendered" / "cloudkeeper.json")
    assert {source.adopt for source in rendered.lists} == {
        "cloudkeeper": {"cloudkeeper-os"},
        "atrope": {"atrope"},
    }[tree]
    assert "appliance-migrate ok" in err


def test_a_cloudkeeper_install_becomes_lists_with_tokens_in_files_and_its_vo_projects(
    tmp_path, capsys
):
    out, _ = _migrate("cloudkeeper", tmp_path, capsys)
    config = loader.load(tmp_path / "appliance.yaml", check_files=False)
    assert config.site.name == "CK-TEST-SITE"  # caso.conf's site_name
    fedcloud, access = config.images.lists
    assert (fedcloud.name, str(fedcloud.url)) == (
        "fedcloud-egi-eu",
        "https://vmcaster.appdb.egi.eu/store/vo/fedcloud.egi.eu/image.list",
    )
    assert fedcloud.token_file == tmp_path / "secrets" / "appdb-token-fedcloud-egi-eu"
    assert (fedcloud.vo, fedcloud.project, fedcloud.adopt) == (
        "fedcloud.egi.eu",
        "vo-fedcloud",
        "cloudkeeper-os",
    )
    assert (access.token_file, access.project) == (None, "vo-access")  # mapping.json's tenant
    assert config.openstack is not None
    assert (config.openstack.username, str(config.openstack.auth_url)) == (
        "cloudkeeper",
        "https://keystone.example.org:5000/v3",
    )
    assert config.accounting.openstack is not None
    assert config.accounting.openstack.username == "accounting"  # cASO's own user
    assert config.accounting.caso.record_types == ["cloud", "accelerator", "storage"]
    assert len(config.accounting.caso.projects) == 2
    assert config.bdii.vo_map_file == tmp_path / "voms.json"
    assert (tmp_path / "voms.json").read_text() == (
        TREES / "cloudkeeper/etc/caso/voms.json"
    ).read_text()
    # What it could not carry over is named, with why.
    notes = [line for line in out.splitlines() if line.startswith("#   ")]
    assert any("[keystone_authtoken] insecure:" in note for note in notes)
    assert any("[DEFAULT] image_visibility:" in note for note in notes)
    assert any("images.endorser: cloudkeeper did not check" in note for note in notes)
    assert any("vo.access.egi.eu.domain:" in note for note in notes)
    assert any("[DEFAULT] spooldir:" in note for note in notes)
    assert any("[ssm] output_path: cASO runs inside the appliance" in note for note in notes)


def test_an_atrope_install_keeps_its_list_names_so_its_images_are_adopted(tmp_path, capsys):
    out, _ = _migrate("atrope", tmp_path, capsys)
    config = loader.load(tmp_path / "appliance.yaml", check_files=False)
    fedcloud, access = config.images.lists
    # atrope stored the hepix.yaml name in each image's image_list: the same name here.
    assert (fedcloud.name, fedcloud.adopt, fedcloud.project, fedcloud.prefix) == (
        "egi.fedcloud",
        "atrope",
        "vo-fedcloud",
        "FC ",
    )
    assert fedcloud.endorser is not None and fedcloud.endorser.dn.endswith("argo-egi@grnet.gr")
    assert fedcloud.token_file == tmp_path / "secrets" / "appdb-token-egi.fedcloud"
    assert (access.enabled, access.token_file) == (False, None)
    assert config.images.prefix == "EGI " and config.images.formats == ["qcow2", "raw"]
    assert config.openstack is not None
    assert config.openstack.application_credential_id == "9f8e7d6c5b4a"
    assert config.openstack.application_credential_secret_file == (
        tmp_path / "secrets" / "atrope-application_credential_secret"
    )
    assert config.site.name == "AT-TEST-SITE"
    assert config.bdii.vos["fedcloud.egi.eu"].project == "6b2e1c0d9f8a4b7c8d9e0f1a2b3c4d5e"
    notes = [line for line in out.splitlines() if line.startswith("#   ")]
    assert any("formats ova: Glance gets" in note for note in notes)
    assert any("egi.access.images: the appliance replicates a whole list" in note for note in notes)
    assert any("[glance] vo_map:" in note for note in notes)
    assert any("[DEFAULT] state_path:" in note for note in notes)
    assert any("[cache] path: no such atrope setting" in note for note in notes)
    assert not any("[glance] tag" in note for note in notes)  # atrope-catchall: adopt finds it


def test_an_atrope_tag_adopt_cannot_recognise_is_named(tmp_path, capsys):
    tree = tmp_path / "tree"
    (tree / "etc/atrope").mkdir(parents=True)
    conf = (TREES / "atrope/etc/atrope/atrope.conf").read_text()
    (tree / "etc/atrope/atrope.conf").write_text(conf.replace("atrope-catchall", "images-sync"))
    (tree / "etc/atrope/hepix.yaml").write_text(
        (TREES / "atrope/etc/atrope/hepix.yaml").read_text()
    )
    code = cli.main(["migrate", "--root", str(tree), "--config-dir", str(tmp_path / "out"),
                     "--hostname", "a.example.org"])  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 0
    assert "[glance] tag images-sync: adopt recognises atrope's images by a tag" in out
    assert "accounting: no " in out  # no caso.conf: accounting off, and said so


def test_the_2017_appliances_voms_json_in_etc_is_found(tmp_path, capsys):
    tree = tmp_path / "tree"
    (tree / "etc/caso").mkdir(parents=True)
    conf = (TREES / "atrope/etc/caso/caso.conf").read_text()
    (tree / "etc/caso/caso.conf").write_text(conf)  # names no mapping_file
    (tree / "etc/voms.json").write_text('{"vo.example": {"projects": ["vo-example"]}}')
    code = cli.main(["migrate", "--root", str(tree), "--config-dir", str(tmp_path / "out"),
                     "--hostname", "a.example.org"])  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 0 and f"vo_map_file: {tmp_path / 'out' / 'voms.json'}" in out
    assert (tmp_path / "out/voms.json").read_text() == (tree / "etc/voms.json").read_text()
