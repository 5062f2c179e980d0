"""Test infrastructure of image replication: a real CA, real signatures, a real server.

The CA is the tests' shared ``TestCA`` (tests/support/testca.py), published
as a hashed directory like ``/etc/grid-security/certificates``. ``ListServer``
is an HTTPS server with a certificate from that CA; it serves image lists
and images, honours ``Range``, checks the AppDB-style token, and can be told
to misbehave (cut a transfer short, answer 5xx) to exercise recovery. They
live in tests/support/listserver.py, shared with the fault corpus.
"""

from __future__ import annotations

import pytest

from tests.support.listserver import (  # noqa: F401  (re-exported for the tests here)
    DATE,
    ENDORSER_DN,
    GlanceFaults,
    ListServer,
    Signing,
    image_entry,
    image_list,
    sign,
)


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> Signing:
    made = Signing(tmp_path_factory.mktemp("signing"))
    yield made
    made.server.stop()
