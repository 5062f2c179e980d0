from pathlib import Path

from fedcloud_appliance import loader
from fedcloud_appliance.jobs import RENDERED, job_specs

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


def test_jobs_get_secrets_only_through_the_rendered_volume_never_the_environment():
    config = loader.load(EXAMPLE, check_files=False)
    for spec in job_specs(config, "1"):
        assert all(m.kind == "volume" for m in spec.mounts), spec.name
        config_volume = next(m for m in spec.mounts if m.target == RENDERED)
        assert config_volume.read_only
        assert dict(spec.environment) == {}  # nothing, let alone a secret


def test_disabled_services_have_no_jobs():
    config = loader.load(EXAMPLE, check_files=False)
    config = config.model_copy(
        update={"accounting": config.accounting.model_copy(update={"enabled": False})}
    )
    assert {s.name for s in job_specs(config, "1")} == {"image-sync", "bdii-publish"}


def test_each_job_has_its_own_timeout_unless_the_config_sets_one():
    import datetime

    config = loader.load(EXAMPLE, check_files=False)
    timeouts = {spec.name: spec.timeout for spec in job_specs(config, "1")}
    assert timeouts == {
        "image-sync": datetime.timedelta(hours=3),
        "bdii-publish": datetime.timedelta(minutes=20),
        "caso-extract": datetime.timedelta(hours=1),
        "apel-send": datetime.timedelta(minutes=30),
    }
    one_hour = config.supervisor.model_copy(update={"job_timeout": datetime.timedelta(hours=1)})
    config = config.model_copy(update={"supervisor": one_hour})
    assert {spec.timeout for spec in job_specs(config, "1")} == {datetime.timedelta(hours=1)}


def test_job_containers_keep_only_the_capabilities_they_need():
    config = loader.load(EXAMPLE, check_files=False)
    kept = {spec.name: spec.capabilities for spec in job_specs(config, "1")}
    assert kept == {"image-sync": (), "bdii-publish": (), "caso-extract": (),
                    "apel-send": ("DAC_OVERRIDE",)}  # fmt: skip
