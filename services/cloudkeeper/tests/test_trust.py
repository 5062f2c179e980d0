"""Which image lists are trusted: real signatures, real CA directory, real HTTPS."""

from __future__ import annotations

import datetime
import json

import pytest
import requests

from fedcloud_cloudkeeper import fetch, trust
from fedcloud_cloudkeeper.errors import FetchError, ImageListInvalidError, ImageListUntrustedError
from tests.support.testca import TestCA

from .conftest import DATE, image_entry, image_list, sign


def _now() -> datetime.datetime:
    """Now at each check: the lists are made "5 minutes ago" when each test runs."""
    return datetime.datetime.now(datetime.UTC)


def _document(signing, **overrides):
    return image_list([image_entry("img-a", b"a" * 100, signing.server.url)], **overrides)


def _verify(signing, message, source=None, last=None):
    return trust.verify_list(message, source or signing.source(), signing.ca_dir, _now(), last)


@pytest.mark.parametrize("opaque", [False, True], ids=["clear-signed", "opaque"])
def test_both_smime_forms_verify_and_yield_the_signed_list(signing, opaque):
    document = _document(signing)
    message = signing.publish("/lists/forms", document, opaque=opaque)
    trusted, content = _verify(signing, message)
    assert json.loads(content) == document
    assert [i.identifier for i in trusted.images] == ["img-a"]
    assert trusted.vo == "vo.demo.example"


def test_only_the_signed_part_is_used_not_text_around_it(signing):
    message = signing.publish("/lists/extra", _document(signing))
    forged = json.dumps(_document(signing, **{"dc:title": "forged"})).encode()
    # The MIME preamble is outside the signature: whatever it says is ignored.
    assert b"This is an S/MIME signed message" in message
    message = message.replace(b"This is an S/MIME signed message", forged)
    trusted, _ = _verify(signing, message)
    assert trusted.title == "Test list"


def test_a_tampered_signed_list_is_refused(signing):
    message = signing.publish("/lists/tamper", _document(signing))
    tampered = message.replace(b'"Test list"', b'"Test lisT"')
    with pytest.raises(ImageListUntrustedError, match="signature check failed"):
        _verify(signing, tampered)


@pytest.mark.parametrize("name", ["Rogue CA", "Test CA"], ids=["unknown", "impostor-same-name"])
def test_a_signer_from_an_untrusted_ca_is_refused(signing, tmp_path, name):
    rogue = TestCA(tmp_path / "rogue", dn=f"/DC=org/DC=example/CN={name}")
    signer = rogue.issue("endorser", "/DC=org/DC=example/O=Endorsers/CN=appdb.example.org")
    message = sign(json.dumps(_document(signing)).encode(), *signer)
    with pytest.raises(ImageListUntrustedError, match="signature check failed"):
        _verify(signing, message)


def test_a_revoked_signer_is_refused_through_the_crl(tmp_path):
    ca = TestCA(tmp_path / "ca")
    cert, key = ca.issue("endorser", "/DC=org/DC=example/O=Endorsers/CN=appdb.example.org")
    ca.revoke(cert)
    directory = ca.publish(tmp_path / "certificates")
    source = trust.ListSource(
        name="x", url="https://x/", endorser_dn=ca.dn.replace("Test CA", "x"), endorser_ca=ca.dn
    )
    message = sign(json.dumps({"hv:imagelist": {}}).encode(), cert, key)
    with pytest.raises(ImageListUntrustedError, match="revoked"):
        trust.verify_list(message, source, directory, _now())


def test_the_signer_must_be_the_configured_endorser(signing):
    message = signing.publish("/lists/dn", _document(signing))
    source = signing.source(endorser_dn="/DC=org/DC=example/CN=someone-else")
    with pytest.raises(ImageListUntrustedError, match="not the configured endorser"):
        _verify(signing, message, source)


def test_the_signer_must_be_the_lists_own_endorser(signing):
    document = _document(signing)
    document["hv:imagelist"]["hv:endorser"]["hv:x509"]["hv:dn"] = "/DC=org/CN=other"
    message = signing.publish("/lists/own", document)
    with pytest.raises(ImageListUntrustedError, match="hv:endorser"):
        _verify(signing, message)


@pytest.mark.parametrize(
    ("field", "delta", "reason"),
    [("dc:date:expires", -1, "expired"), ("dc:date:created", +1, "not valid before")],
)
def test_lists_outside_their_dates_are_refused(signing, field, delta, reason):
    when = (_now() + datetime.timedelta(days=delta)).strftime(DATE)
    message = signing.publish("/lists/dates", _document(signing, **{field: when}))
    with pytest.raises(ImageListUntrustedError, match=reason):
        _verify(signing, message)


def test_a_list_older_than_the_last_trusted_one_is_a_replay(signing):
    old = _document(
        signing, **{"dc:date:created": (_now() - datetime.timedelta(days=2)).strftime(DATE)}
    )
    new = _document(signing)
    newer, _ = _verify(signing, signing.publish("/lists/r", new))
    with pytest.raises(ImageListUntrustedError, match="replay"):
        _verify(signing, signing.publish("/lists/r", old), last=newer)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["hv:imagelist"].pop("dc:date:expires"), "hv:imagelist.dc:date:expires"),
        (
            lambda d: d["hv:imagelist"]["hv:images"][0]["hv:image"].pop("sl:checksum:sha512"),
            "hv:imagelist.hv:images[0].hv:image.sl:checksum:sha512",
        ),
        (
            lambda d: d["hv:imagelist"]["hv:images"][0]["hv:image"].update({"hv:size": "big"}),
            "hv:imagelist.hv:images[0].hv:image.hv:size",
        ),
        (
            lambda d: d["hv:imagelist"]["hv:images"][0]["hv:image"].update(
                {"dc:identifier": "../../etc/passwd"}
            ),
            "hv:imagelist.hv:images[0].hv:image.dc:identifier",
        ),
    ],
    ids=["no-expiry", "no-checksum", "bad-size", "path-in-identifier"],
)
def test_structure_errors_name_the_field(signing, mutate, field):
    document = _document(signing)
    mutate(document)
    message = signing.publish("/lists/bad", document)
    with pytest.raises(ImageListInvalidError) as error:
        _verify(signing, message)
    assert f"field {field}:" in str(error.value)


def test_signed_malformed_json_is_named_as_such(signing):
    message = sign(b'{"hv:imagelist": {', *signing.endorser)
    with pytest.raises(ImageListInvalidError, match="not JSON"):
        _verify(signing, message)


def test_fetch_sends_the_token_as_basic_auth_user_and_follows_redirects(signing):
    signing.server.files["/lists/private"] = b"signed bytes"
    signing.server.tokens["/lists/private"] = "s3cr3t"
    signing.server.redirects["/lists/moved"] = f"{signing.server.url}/lists/private"
    http = fetch.session(str(signing.ca_dir))
    assert (
        fetch.fetch_list(http, f"{signing.server.url}/lists/moved", "s3cr3t", 5) == b"signed bytes"
    )
    with pytest.raises(FetchError, match="HTTP 401"):
        fetch.fetch_list(http, f"{signing.server.url}/lists/private", None, 5)


def test_fetch_refuses_a_server_outside_the_trusted_cas(signing):
    signing.server.files["/lists/any"] = b"x"
    with pytest.raises(FetchError, match="SSLError"):
        fetch.fetch_list(requests.Session(), f"{signing.server.url}/lists/any", None, 5)


def test_a_server_that_is_down_is_a_fetch_failure(signing):
    http = fetch.session(str(signing.ca_dir))
    with pytest.raises(FetchError, match="ConnectionError"):
        fetch.fetch_list(http, "https://localhost:1/lists/x", None, 5)


def test_a_list_for_another_vo_than_configured_is_refused(signing):
    message = signing.publish("/lists/vo", _document(signing, **{"ad:vo": "other.vo"}))
    with pytest.raises(ImageListUntrustedError, match=r"ad:vo is 'other\.vo'"):
        _verify(signing, message, signing.source(vo="vo.demo.example"))
