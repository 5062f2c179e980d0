from importlib.metadata import requires, version

import fedcloud_appliance


def test_reports_the_installed_version():
    assert fedcloud_appliance.__version__ == version("fedcloud-appliance")


def test_builds_on_the_shared_package_not_a_copy():
    assert any(r.startswith("fedcloud-common") for r in requires("fedcloud-appliance"))
