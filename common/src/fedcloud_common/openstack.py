"""OpenStack credentials as every service receives them, secrets from files.

The supervisor renders each service's ``openstack`` section in the same
shape as the appliance file's (password, application credential or a
clouds.yaml entry). Secrets stay in their files until the moment of use:
they are read here to open an openstacksdk connection, or to hand
subprocess tools (cASO, cloud-info-provider) the standard ``OS_*``
variables, which live only in that child's environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, HttpUrl, model_validator

from fedcloud_common.model import Model
from fedcloud_common.secrets import read_secret

if TYPE_CHECKING:
    import openstack.connection

SECRET_KEYS = ("password_file", "application_credential_secret_file")
# Every key naming a file: the render step copies each into the services'
# secrets directory and renders the path the containers see.
FILE_KEYS = (*SECRET_KEYS, "clouds_yaml", "ca_bundle")


class Credentials(Model):
    """Keystone v3 credentials: a password, an application credential or a
    clouds.yaml entry, with secrets as file paths.

    The one model of them: appliance.yaml's ``openstack`` sections are
    validated by it, and the render step hands each service an instance.
    """

    auth_url: HttpUrl | None = Field(None, description="Keystone v3, e.g. https://keystone:5000/v3")
    username: str | None = Field(None, description="the appliance's OpenStack user")
    password_file: Path | None = Field(None, description="its password, in a root-only file")
    project_name: str | None = Field(None, description="the project it logs in to")
    project_id: str | None = Field(None, description="or that project's id")
    user_domain_name: str = Field("Default", description="the user's Keystone domain")
    project_domain_name: str = Field("Default", description="the project's Keystone domain")
    application_credential_id: str | None = Field(
        None, description="an application credential instead of a password"
    )
    application_credential_secret_file: Path | None = Field(
        None, description="its secret, in a root-only file"
    )
    cloud: str | None = Field(None, description="an entry of clouds_yaml")
    clouds_yaml: Path | None = Field(None, description="a clouds.yaml file, for cloud")
    region: str | None = Field(None, description="the region of the cloud's catalog to use")
    ca_bundle: Path | None = Field(
        None, description="CAs of the cloud's TLS certificates, if not public ones"
    )
    timeout_s: float = Field(
        60, gt=0, description="seconds any one OpenStack API request may take before it fails"
    )

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Credentials:
        ways = {
            "password": self.username is not None or self.password_file is not None,
            "application credential": self.application_credential_id is not None,
            "clouds.yaml": self.cloud is not None,
        }
        chosen = [name for name, used in ways.items() if used]
        if len(chosen) != 1:
            raise ValueError(
                "give exactly one way to authenticate: username + password_file "
                "(+ project_name), application_credential_id + "
                "application_credential_secret_file, or cloud (+ clouds_yaml); "
                f"found {', '.join(chosen) or 'none'}"
            )
        if chosen == ["password"]:
            missing = [
                key
                for key in ("auth_url", "username", "password_file")
                if getattr(self, key) is None
            ]
            if self.project_name is None and self.project_id is None:
                missing.append("project_name")
            if missing:
                raise ValueError(f"password authentication also needs: {', '.join(missing)}")
        if chosen == ["application credential"] and (
            self.auth_url is None or self.application_credential_secret_file is None
        ):
            raise ValueError(
                "application credentials need auth_url and application_credential_secret_file"
            )
        return self

    def secret_files(self) -> list[Path]:
        return [p for p in (self.password_file, self.application_credential_secret_file) if p]

    def connect(self, **overrides: str) -> openstack.connection.Connection:
        """An openstacksdk connection; ``overrides`` e.g. scope to another project."""
        import openstack  # only the services that talk to OpenStack need the SDK

        if self.cloud:
            config = openstack.config.OpenStackConfig(
                config_files=[str(self.clouds_yaml)] if self.clouds_yaml else None
            )
            options: dict[str, Any] = {"region_name": self.region, "api_timeout": self.timeout_s}
            region = config.get_one(cloud=self.cloud, **(options | overrides))
            return openstack.connection.Connection(config=region)
        args = self._auth_args()
        if {"project_name", "project_id"} & set(overrides):
            args.pop("project_name", None)
            args.pop("project_id", None)
        return openstack.connect(api_timeout=self.timeout_s, **(args | overrides))

    def _auth_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"auth_url": str(self.auth_url), "region_name": self.region}
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
