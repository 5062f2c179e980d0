from importlib.metadata import requires, version

import fedcloud_bdii


def test_reports_the_installed_version():
    assert fedcloud_bdii.__version__ == version("fedcloud-bdii")


def test_builds_on_the_shared_package_not_a_copy():
    assert any(r.startswith("fedcloud-common") for r in requires("fedcloud-bdii"))
