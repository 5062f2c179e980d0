"""ARGO Messaging Service, through argo-ams-library (the client APEL SSM 4 uses).

Authentication is chosen by the settings: a static token from a file
(``token_file``, SSM's ``token:``), or the host-certificate exchange
(``:authx509`` on ``authx509_port``), made at each run so a token never
expires between runs.

The publishes go through the library, each with the per-message timeout
and the configured CA. The certificate exchange does not: the library's
``auth_via_cert`` replaces the request options it is given with the
certificate alone, so it can be given neither a timeout nor a CA, and a
silent endpoint holds it for ever (``test_ams_library.py`` measures that).
This module makes that one call itself, bounded, and hands the token over.

What else the library costs is measured in ``bench/accounting``: it opens
a new HTTPS connection for every publish (no session), which is why the
sender packs records into as few publishes as the size limit allows.
"""

from __future__ import annotations

import base64
from typing import Any

import requests
from argo_ams_library import (
    AmsConnectionException,
    AmsException,
    AmsServiceException,
    ArgoMessagingService,
)

from fedcloud_accounting.errors import DeliveryError, EndpointDownError, TooLargeError
from fedcloud_accounting.transports.base import Outgoing, Transport
from fedcloud_common.secrets import read_secret

# One message's JSON around its base64 data, as the library serialises it:
# {"attributes": {"empaid": "<id>"}, "data": "<base64>"} and the ", " after it.
_ENTRY_BYTES = len('{"attributes": {"empaid": ""}, "data": ""}, ')


class AmsTransport(Transport):
    request_overhead = len('{"messages": []}')

    def wire_bytes(self, message: Outgoing) -> int:
        return 4 * -(-len(message.payload) // 3) + len(message.msg_id) + _ENTRY_BYTES

    def open(self) -> None:
        cfg = self.config
        self.max_batch = cfg.batch_size
        # passed on every call: requests lets REQUESTS_CA_BUNDLE override a
        # default ``verify``, which would silently drop the configured CA
        self.verify: str | bool = str(cfg.ca_bundle) if cfg.ca_bundle else True
        self.target = f"AMS {cfg.host} topic {cfg.destination}"
        if cfg.token_file is not None:
            token = read_secret(cfg.token_file).reveal()
        else:
            token = self._token()
        # a non-empty token: the library makes no certificate call of its own
        self.ams = ArgoMessagingService(
            endpoint=f"{cfg.host}:{cfg.port or 443}", token=token, project=cfg.ams_project
        )

    def _token(self) -> str:
        """The host-certificate exchange, bounded in time and checked against the CA."""
        cfg = self.config
        url = (
            f"https://{cfg.host}:{cfg.authx509_port}/v1/service-types/ams/hosts/{cfg.host}:authx509"
        )
        try:
            reply = requests.get(
                url,
                cert=(str(cfg.cert), str(cfg.key)),
                timeout=cfg.message_timeout_s,
                verify=self.verify,
            )
        except requests.RequestException as error:
            raise EndpointDownError(target=url, reason=f"no token: {_why(error)}") from None
        if reply.status_code != 200:
            raise EndpointDownError(
                target=url, reason=f"no token: HTTP {reply.status_code} {reply.text[:200]}"
            )
        return str(reply.json()["token"])

    def send(self, batch: list[Outgoing]) -> None:
        messages: list[dict[str, Any]] = [
            {
                "attributes": {"empaid": message.msg_id},
                "data": base64.b64encode(message.payload).decode("ascii"),
            }
            for message in batch
        ]
        timeout = (min(10.0, self.config.message_timeout_s), self.config.message_timeout_s)
        try:
            reply = self.ams.publish(
                self.config.destination, messages, timeout=timeout, verify=self.verify
            )
        except AmsConnectionException as error:
            raise EndpointDownError(target=self.target, reason=_why(error)) from None
        except AmsServiceException as error:
            code = getattr(error, "code", None)
            if code in (401, 403):
                raise EndpointDownError(
                    target=self.target, reason=f"HTTP {code}: token refused"
                ) from None
            if code == 413:
                size = self.request_overhead + sum(self.wire_bytes(m) for m in batch)
                raise TooLargeError(target=self.target, size=size, reason=error.msg) from None
            raise DeliveryError(target=self.target, reason=f"HTTP {code}: {error.msg}") from None
        except AmsException as error:
            raise DeliveryError(target=self.target, reason=_why(error)) from None
        ids = reply.get("messageIds", []) if isinstance(reply, dict) else []
        if len(ids) != len(batch):
            raise DeliveryError(
                target=self.target, reason=f"{len(ids)} ids for {len(batch)} messages"
            )


def _why(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error)[-300:]}"
