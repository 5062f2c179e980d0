"""One line for an operator about an error, naming the fix where there is one.

Tracebacks of keystoneauth, requests or the OS help no one at 3 a.m. The
faults sites actually meet (the cloud unreachable, a wrong password, a TLS
trust problem, a full disk, a timeout) each get their own sentence with the
appliance.yaml key to check; anything else is its type and the first line
of its message, cut at a word, never mid-word. Known faults are told apart
by class name along the exception chain, so this module needs none of the
client libraries it describes.
"""

from __future__ import annotations

import errno
import re

MAX_CHARS = 300

# (class names anywhere in the chain, message) -- first match wins.
_KNOWN: tuple[tuple[frozenset[str], str], ...] = (
    (
        frozenset({"Unauthorized", "InvalidCredentials"}),
        "OpenStack refused the credentials (401): check openstack.username, "
        "openstack.password_file (or the application credential) and the project",
    ),
    (
        frozenset({"Forbidden"}),
        "OpenStack refused the request (403): give the appliance's user a role in the project",
    ),
    (
        frozenset({"SSLError", "SSLCertVerificationError", "CertificateError"}),
        "TLS verification failed: check openstack.ca_bundle (or outbound.ca_bundle) "
        "holds the CA that signed the server's certificate",
    ),
    (
        frozenset(
            {
                "ConnectTimeout",
                "ReadTimeout",
                "Timeout",
                "TimeoutError",
                "ConnectTimeoutError",
                "ReadTimeoutError",
                "timeout",
            }
        ),
        "timed out: the server did not answer in time; is it overloaded or down? "
        "(openstack.timeout_s bounds each request)",
    ),
    (
        frozenset(
            {
                "ConnectFailure",
                "ConnectionError",
                "ConnectionRefusedError",
                "NewConnectionError",
                "MaxRetryError",
                "RemoteDisconnected",
                "ServiceUnavailable",
                "EndpointNotFound",
            }
        ),
        "cannot reach the cloud: is it up, and is openstack.auth_url right?",
    ),
)


_STATUS = {401: "Unauthorized", 403: "Forbidden", 503: "ServiceUnavailable"}


def explain(error: BaseException) -> str:
    """The one-line reason for ``error``, with what to check."""
    chain = _chain(error)
    for failure in chain:
        if isinstance(failure, OSError) and failure.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" in {failure.filename}" if failure.filename else ""
            return f"disk full{where}: free space there (df -h) or grow the disk"
    # Exact class names: urllib3's NewConnectionError is a ConnectTimeoutError
    # by inheritance, though nothing timed out.
    names = {type(failure).__name__ for failure in chain}
    names |= {_STATUS[code] for f in chain if (code := getattr(f, "status_code", None)) in _STATUS}
    for wanted, message in _KNOWN:
        if names & wanted:
            return cut(f"{message} ({_first_line(error)})")
    return _first_line(error)


def explain_text(text: str) -> str | None:
    """The known fault a child process's error line names, if it names one.

    Tools run as subprocesses (cASO, cloud-info-provider) report their
    errors as log text, with the exception's class name in it.
    """
    for wanted, message in _KNOWN:
        if any(re.search(rf"\b{re.escape(name)}\b", text) for name in wanted):
            return cut(f"{message} ({' '.join(text.split())})")
    return None


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _first_line(error: BaseException) -> str:
    message = str(error).strip()
    text = f"{type(error).__name__}: {message.splitlines()[0]}" if message else type(error).__name__
    return cut(re.sub(r"\s+", " ", text))


def cut(text: str, limit: int = MAX_CHARS) -> str:
    """``text`` within ``limit`` characters, cut at a word and marked with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip(" ,;:") + "…"
