"""ARGO Messaging Service over HTTPS, the way EGI's accounting is fed.

Wire protocol as argo-ams-library and ssmsend use it: a token from the
``:authx509`` call (client certificate, fetched at each run, so it never
expires between runs) unless a static token file is configured, then
``POST /v1/projects/<project>/topics/<topic>:publish`` with base64 data and
the ``empaid`` attribute. One kept-alive session carries the whole run and
a publish holds up to ``batch_size`` messages: that, and signing in-process,
is where the speed over ssmsend comes from.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import requests

from fedcloud_accounting.errors import DeliveryError, EndpointDownError, TooLargeError
from fedcloud_accounting.transports.base import Outgoing, Transport
from fedcloud_common.secrets import read_secret

# One message's JSON around its base64 data, as requests serialises it:
# {"attributes": {"empaid": "<id>"}, "data": "<base64>"} and the ", " after it.
_ENTRY_BYTES = len('{"attributes": {"empaid": ""}, "data": ""}, ')


class AmsTransport(Transport):
    request_overhead = len('{"messages": []}')

    def wire_bytes(self, message: Outgoing) -> int:
        return 4 * -(-len(message.payload) // 3) + len(message.msg_id) + _ENTRY_BYTES

    def open(self) -> None:
        cfg = self.config
        self.max_batch = cfg.batch_size
        self.session = requests.Session()
        # passed on every call: requests lets REQUESTS_CA_BUNDLE override a
        # session-level ``verify``, which would silently drop the configured CA
        self.verify: str | bool = str(cfg.ca_bundle) if cfg.ca_bundle else True
        base = f"https://{cfg.host}:{cfg.port or 443}"
        self.publish_url = f"{base}/v1/projects/{cfg.ams_project}/topics/{cfg.destination}:publish"
        self.target = f"AMS {cfg.host} topic {cfg.destination}"
        if cfg.token_file is not None:
            token = read_secret(cfg.token_file).reveal()
        else:
            token = self._token()
        self.session.headers["x-api-key"] = token

    def _token(self) -> str:
        cfg = self.config
        url = (
            f"https://{cfg.host}:{cfg.authx509_port}/v1/service-types/ams/hosts/{cfg.host}:authx509"
        )
        try:
            reply = self.session.get(
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

    def close(self) -> None:
        self.session.close()

    def send(self, batch: list[Outgoing]) -> None:
        body: dict[str, Any] = {
            "messages": [
                {
                    "attributes": {"empaid": message.msg_id},
                    "data": base64.b64encode(message.payload).decode("ascii"),
                }
                for message in batch
            ]
        }
        data = json.dumps(body).encode()  # what wire_bytes counts, byte for byte
        timeout = (min(10.0, self.config.message_timeout_s), self.config.message_timeout_s)
        try:
            reply = self.session.post(
                self.publish_url,
                data=data,
                headers={"Content-Type": "application/json"},
                timeout=timeout,
                verify=self.verify,
            )
        except requests.RequestException as error:
            raise EndpointDownError(target=self.target, reason=_why(error)) from None
        if reply.status_code in (401, 403):
            raise EndpointDownError(
                target=self.target, reason=f"HTTP {reply.status_code}: token refused"
            )
        if reply.status_code == 413:
            raise TooLargeError(
                target=self.target,
                size=len(data),
                reason=f"HTTP 413 {reply.text[:200]}",
            )
        if reply.status_code != 200:
            raise DeliveryError(
                target=self.target, reason=f"HTTP {reply.status_code} {reply.text[:200]}"
            )
        ids = reply.json().get("messageIds", [])
        if len(ids) != len(batch):
            raise DeliveryError(
                target=self.target, reason=f"{len(ids)} ids for {len(batch)} messages"
            )


def _why(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error)[-300:]}"
