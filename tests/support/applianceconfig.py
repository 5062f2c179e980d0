"""The smallest valid appliance.yaml, and the secret it names, for tests that load one.

One copy, so a key that becomes required is added in one place, and each
test adds only what it is about (``MINIMAL + "bdii: ..."``).
"""

from __future__ import annotations

import os
from pathlib import Path

SECRET = "s3cret-value"  # tests assert it never appears in a message

# ``PASSWORD`` stands for the password file's path: see ``write_password``.
MINIMAL = """
site: {name: TEST-SITE, hostname: cloud.test}
openstack:
  auth_url: https://keystone.test:5000/v3
  username: fedcloud
  password_file: PASSWORD
  project_name: ops
"""


def write_password(config_dir: Path) -> Path:
    """``config_dir/secrets/password`` holding ``SECRET``, mode 0600.

    Where and how the loader accepts a secret: in the ``secrets`` directory
    beside appliance.yaml (the one the services mount), readable by root only.
    """
    (config_dir / "secrets").mkdir(exist_ok=True)
    password = config_dir / "secrets" / "password"
    password.write_text(SECRET + "\n")
    os.chmod(password, 0o600)
    return password
