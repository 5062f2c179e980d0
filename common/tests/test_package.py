from importlib.metadata import version

import fedcloud_common


def test_reports_the_installed_version():
    assert fedcloud_common.__version__ == version("fedcloud-common")
