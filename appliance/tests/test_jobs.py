from pathlib import Path

from fedcloud_appliance import loader
from fedcloud_appliance.jobs import job_specs

EXAMPLE = Path(__file__).resolve().parents[1] / "etc" / "appliance.example.yaml"


def test_every_enabled_service_gets_its_jobs_on_its_schedule():
    config = loader.load(EXAMPLE, check_files=False)
    specs = {s.name: s for s in job_specs(config, "1.2.3")}
    assert set(specs) == {"image-sync", "bdii-publish", "caso-extract", "apel-send"}
    assert specs["image-sync"].schedule == config.images.schedule
    assert specs["apel-send"].schedule == config.accounting.sender.schedule
    assert specs["caso-extract"].image == "fedcloud/accounting:1.2.3"


def test_jobs_mount_the_volumes_of_their_compose_project():
    config = loader.load(EXAMPLE, check_files=False)
    extract = next(s for s in job_specs(config, "1", "site-a") if s.name == "caso-extract")
    volumes = {m.target: m for m in extract.mounts if m.kind == "volume"}
    assert volumes["/var/spool/apel"].source == "site-a_apel_spool"
    assert not volumes["/var/spool/apel"].read_only
    assert volumes["/etc/fedcloud-appliance/rendered"].read_only


def test_secret_files_are_mounted_read_only_and_never_put_in_the_environment():
    config = loader.load(EXAMPLE, check_files=False)
    sync = next(s for s in job_specs(config, "1") if s.name == "image-sync")
    secret_mounts = {m.source: m for m in sync.mounts if m.kind == "bind"}
    assert set(secret_mounts) == {
        "/etc/fedcloud-appliance/secrets/openstack-password",
        "/etc/fedcloud-appliance/secrets/appdb-token",
    }
    assert all(m.read_only and m.target == m.source for m in secret_mounts.values())
    assert dict(sync.environment) == {"TZ": "UTC"}


def test_secret_files_come_from_where_the_host_keeps_the_config_dir():
    config = loader.load(EXAMPLE, check_files=False)
    specs = job_specs(config, "1", host_config_dir=Path("/srv/fedcloud/etc"))
    sync = next(s for s in specs if s.name == "image-sync")
    sources = {m.target: m.source for m in sync.mounts if m.kind == "bind"}
    assert sources["/etc/fedcloud-appliance/secrets/appdb-token"] == (
        "/srv/fedcloud/etc/secrets/appdb-token"
    )


def test_disabled_services_have_no_jobs():
    config = loader.load(EXAMPLE, check_files=False)
    config = config.model_copy(
        update={"accounting": config.accounting.model_copy(update={"enabled": False})}
    )
    assert {s.name for s in job_specs(config, "1")} == {"image-sync", "bdii-publish"}
