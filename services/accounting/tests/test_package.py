from importlib.metadata import requires, version

import fedcloud_accounting


def test_reports_the_installed_version():
    assert fedcloud_accounting.__version__ == version("fedcloud-accounting")


def test_builds_on_the_shared_package_not_a_copy():
    assert any(r.startswith("fedcloud-common") for r in requires("fedcloud-accounting"))
