import os

import pytest
from pydantic import ValidationError

from fedcloud_common.openstack import Credentials


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "password"
    path.write_text("fedcloudpass\n")
    os.chmod(path, 0o600)
    return path


def demo_credentials(demo_cloud, password_file, **extra):
    return Credentials.model_validate(
        {
            "auth_url": demo_cloud.auth_url,
            "username": "fedcloud",
            "password_file": str(password_file),
            "project_name": "fedcloud-ops",
            "region": "RegionOne",
            **extra,
        }
    )


def test_child_processes_get_keystoneauth_variables_with_the_secret_read_from_its_file(
    password_file,
):
    credentials = Credentials.model_validate(
        {
            "auth_url": "https://k.test/v3",
            "username": "u",
            "password_file": str(password_file),
            "project_id": "abc",
        }
    )
    env = credentials.environment()
    assert env["OS_PASSWORD"] == "fedcloudpass"
    assert env["OS_PROJECT_ID"] == "abc"
    assert "OS_PROJECT_NAME" not in env
    assert env["OS_IDENTITY_API_VERSION"] == "3"
    assert "fedcloudpass" not in repr(credentials)


def test_a_clouds_yaml_entry_is_passed_by_name():
    env = Credentials.model_validate({"cloud": "site", "clouds_yaml": "/etc/c.yaml"}).environment()
    assert env == {"OS_CLOUD": "site", "OS_CLIENT_CONFIG_FILE": "/etc/c.yaml"}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"auth_url": "http://k.test/v3", "username": "u"}, "needs: password_file, project_name"),
        ({"application_credential_id": "id"}, "need auth_url"),
        ({"cloud": "c", "colour": "blue"}, "colour\n  Extra inputs are not permitted"),
        ({}, "exactly one way to authenticate"),
    ],
)
def test_incomplete_credentials_name_what_is_missing(data, problem):
    with pytest.raises(ValidationError) as raised:
        Credentials.model_validate(data)
    assert problem in str(raised.value)


def test_every_request_is_bounded_by_the_timeout(monkeypatch, password_file):
    import openstack

    seen = {}
    monkeypatch.setattr(openstack, "connect", lambda **kwargs: seen.update(kwargs))
    credentials = Credentials.model_validate(
        {"auth_url": "https://k.test/v3", "username": "u", "password_file": str(password_file),
         "project_name": "p", "timeout_s": 7}
    )  # fmt: skip
    credentials.connect()
    assert seen["api_timeout"] == 7
    assert seen["auth_url"] == "https://k.test/v3"


@pytest.mark.e2e
def test_connects_to_the_demo_cloud_and_rescopes_to_a_vo_project(demo_cloud, password_file):
    credentials = demo_credentials(demo_cloud, password_file)
    connection = credentials.connect()
    assert connection.current_project.name == "fedcloud-ops"
    vo = credentials.connect(project_name="vo-demo")
    assert vo.current_project.name == "vo-demo"
    assert {f.name for f in connection.compute.flavors(is_public=None)} == {
        f.name for f in demo_cloud.seed.FLAVORS
    }
