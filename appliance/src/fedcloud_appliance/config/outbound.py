"""appliance.yaml's ``outbound``: the proxy and CAs for reaching the outside."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, HttpUrl

from fedcloud_appliance.config.base import Section


class Outbound(Section):
    """How the appliance reaches services outside the cloud: GOCDB, image lists, AMS.

    Sites behind an HTTP proxy set it here once instead of in every
    container; the demo uses it to reach its GOCDB stand-in as goc.egi.eu.
    """

    https_proxy: HttpUrl | None = Field(None, description="e.g. http://proxy.example.org:3128")
    no_proxy: list[str] = Field(
        [], description="hosts reached directly, e.g. the Keystone host; always with localhost"
    )
    ca_bundle: Path | None = Field(
        None,
        description="CAs trusted for HTTPS to GOCDB, the image lists and AMS, instead of the "
        "image's list of public CAs",
    )

    def environment(self) -> dict[str, str]:
        """Proxy variables as every HTTP client in the images reads them."""
        if self.https_proxy is None:
            return {}
        no_proxy = ",".join(dict.fromkeys(["localhost", "127.0.0.1", *self.no_proxy]))
        proxy = str(self.https_proxy).rstrip("/")
        return {
            "HTTPS_PROXY": proxy,
            "https_proxy": proxy,
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }
