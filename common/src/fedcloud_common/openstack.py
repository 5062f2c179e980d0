"""OpenStack credentials as every service receives them, secrets from files.

The supervisor renders each service's ``openstack`` section in the same
shape as the appliance file's (password, application credential or a
clouds.yaml entry). Secrets stay in their files until the moment of use:
they are read here to open an openstacksdk connection, or to hand
subprocess tools (cASO, cloud-info-provider) the standard ``OS_*``
variables, which live only in that child's environment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedcloud_common.errors import FedcloudError
from fedcloud_common.secrets import read_secret

if TYPE_CHECKING:
    import openstack.connection


class CredentialsError(FedcloudError):
    msg_fmt = "openstack credentials: {problem}"


@dataclasses.dataclass(frozen=True)
class Credentials:
    auth_url: str | None = None
    username: str | None = None
    password_file: Path | None = None
    project_name: str | None = None
    project_id: str | None = None
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    application_credential_id: str | None = None
    application_credential_secret_file: Path | None = None
    cloud: str | None = None
    clouds_yaml: Path | None = None
    region: str | None = None
    ca_bundle: Path | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Credentials:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CredentialsError(problem=f"unknown keys {unknown}")
        values = {k: v for k, v in data.items() if v is not None}
        for key in (
            "password_file",
            "application_credential_secret_file",
            "clouds_yaml",
            "ca_bundle",
        ):
            if key in values:
                values[key] = Path(values[key])
        credentials = cls(**values)
        credentials._check()
        return credentials

    def _check(self) -> None:
        if self.cloud:
            return
        if self.application_credential_id:
            if not (self.auth_url and self.application_credential_secret_file):
                raise CredentialsError(
                    problem="an application credential needs auth_url and "
                    "application_credential_secret_file"
                )
            return
        missing = [k for k in ("auth_url", "username", "password_file") if not getattr(self, k)]
        if not (self.project_name or self.project_id):
            missing.append("project_name or project_id")
        if missing:
            raise CredentialsError(problem=f"missing {', '.join(missing)}")

    def connect(self, **overrides: str) -> openstack.connection.Connection:
        """An openstacksdk connection; ``overrides`` e.g. scope to another project."""
        import openstack  # only the services that talk to OpenStack need the SDK

        if self.cloud:
            config = openstack.config.OpenStackConfig(
                config_files=[str(self.clouds_yaml)] if self.clouds_yaml else None
            )
            region = config.get_one(cloud=self.cloud, region_name=self.region, **overrides)
            return openstack.connection.Connection(config=region)
        args = self._auth_args()
        if {"project_name", "project_id"} & set(overrides):
            args.pop("project_name", None)
            args.pop("project_id", None)
        return openstack.connect(**(args | overrides))

    def _auth_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"auth_url": self.auth_url, "region_name": self.region}
        if self.ca_bundle:
            args["cacert"] = str(self.ca_bundle)
        if self.application_credential_id:
            assert self.application_credential_secret_file
            args |= {
                "auth_type": "v3applicationcredential",
                "application_credential_id": self.application_credential_id,
                "application_credential_secret": read_secret(
                    self.application_credential_secret_file
                ).reveal(),
            }
            return args
        assert self.password_file
        args |= {
            "username": self.username,
            "password": read_secret(self.password_file).reveal(),
            "user_domain_name": self.user_domain_name,
            "project_domain_name": self.project_domain_name,
        }
        if self.project_id:
            args["project_id"] = self.project_id
        else:
            args["project_name"] = self.project_name
        return args

    def environment(self) -> dict[str, str]:
        """``OS_*`` variables for a child process (keystoneauth's names)."""
        if self.cloud:
            env = {"OS_CLOUD": self.cloud}
            if self.clouds_yaml:
                env["OS_CLIENT_CONFIG_FILE"] = str(self.clouds_yaml)
            if self.region:
                env["OS_REGION_NAME"] = self.region
            return env
        names = {
            "auth_url": "OS_AUTH_URL",
            "region_name": "OS_REGION_NAME",
            "cacert": "OS_CACERT",
            "auth_type": "OS_AUTH_TYPE",
            "application_credential_id": "OS_APPLICATION_CREDENTIAL_ID",
            "application_credential_secret": "OS_APPLICATION_CREDENTIAL_SECRET",
            "username": "OS_USERNAME",
            "password": "OS_PASSWORD",
            "user_domain_name": "OS_USER_DOMAIN_NAME",
            "project_domain_name": "OS_PROJECT_DOMAIN_NAME",
            "project_id": "OS_PROJECT_ID",
            "project_name": "OS_PROJECT_NAME",
        }
        env = {names[k]: str(v) for k, v in self._auth_args().items() if v is not None}
        env["OS_IDENTITY_API_VERSION"] = "3"
        return env
