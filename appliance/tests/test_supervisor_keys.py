"""Every key of appliance.yaml's ``supervisor`` section has its effect.

status_port is tested with `appliance config env` (test_cli.py) and end to
end by the demo (tests/e2e); job_timeout in test_jobs.py.
"""

import datetime
import inspect
import sys

from fedcloud_appliance import cli
from fedcloud_appliance.config import Supervisor
from tests.support.applianceconfig import MINIMAL, write_password


def _config(tmp_path, supervisor: str):
    from fedcloud_appliance import loader

    password = write_password(tmp_path)
    path = tmp_path / "appliance.yaml"
    path.write_text(MINIMAL.replace("PASSWORD", str(password)) + f"supervisor: {supervisor}\n")
    return loader.load(path)


def test_state_dir_holds_the_run_history(tmp_path):
    config = _config(tmp_path, f"{{state_dir: {tmp_path / 'state'}}}")
    supervisor = cli._supervisor(config, None)
    assert supervisor.history.path == tmp_path / "state" / "history.sqlite"
    assert supervisor.lock_dir == tmp_path / "state" / "locks"


def test_job_memory_limits_every_job_container(tmp_path):
    config = _config(tmp_path, f"{{state_dir: {tmp_path}, job_memory: 512m}}")
    assert {spec.memory for spec in cli._supervisor(config, None).specs.values()} == {"512m"}


def test_image_tag_names_the_job_images(tmp_path):
    config = _config(tmp_path, f"{{state_dir: {tmp_path}, image_tag: '2.0.1'}}")
    images = {spec.image for spec in cli._supervisor(config, None).specs.values()}
    assert images == {"fedcloud/cloudkeeper:2.0.1", "fedcloud/bdii:2.0.1"}


def test_job_network_is_the_job_containers_network(tmp_path):
    config = _config(tmp_path, f"{{state_dir: {tmp_path}, job_network: host}}")
    assert {spec.network for spec in cli._supervisor(config, None).specs.values()} == {"host"}


def test_retries_and_retry_after_are_the_retry_policy(tmp_path):
    config = _config(tmp_path, f"{{state_dir: {tmp_path}, retries: 5, retry_after: PT2M}}")
    retry = cli._supervisor(config, None).retry
    assert (retry.attempts, retry.first) == (5, datetime.timedelta(minutes=2))


def test_log_format_is_the_run_logs_format(tmp_path):
    config = _config(tmp_path, f"{{state_dir: {tmp_path}, log_format: json}}")
    assert cli._supervisor(config, None)._report.log_format == "json"


def test_every_key_of_the_section_has_a_test():
    tests = [name for name, _ in inspect.getmembers(sys.modules[__name__], inspect.isfunction)]
    covered_elsewhere = {"status_port", "job_timeout"}
    untested = [
        key
        for key in Supervisor.model_fields
        if key not in covered_elsewhere and not any(key in name for name in tests)
    ]
    assert untested == []
