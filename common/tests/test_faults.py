"""Known faults get their own sentence with the fix; others are cut at a word."""

import errno

import requests

from fedcloud_common.faults import cut, explain


class Unauthorized(Exception):  # noqa: N818 (keystoneauth's class name, without keystoneauth)
    pass


def test_a_wrong_password_names_the_password_file():
    assert "openstack.password_file" in explain(Unauthorized("The request you have made requires"))


def test_a_refused_connection_asks_whether_the_cloud_is_up():
    try:
        requests.get("http://127.0.0.1:9/", timeout=2)
    except requests.ConnectionError as error:
        said = explain(error)
    assert said.startswith("cannot reach the cloud: is it up, and is openstack.auth_url right?")


def test_a_full_disk_says_where_and_what_to_do():
    full = OSError(errno.ENOSPC, "No space left on device", "/image_data/x.part")
    try:
        try:
            raise full
        except OSError as error:
            raise RuntimeError("upload failed") from error
    except RuntimeError as wrapped:
        said = explain(wrapped)
    assert said == "disk full in /image_data/x.part: free space there (df -h) or grow the disk"


def test_a_tls_failure_names_the_ca_bundle_keys():
    import ssl

    assert "openstack.ca_bundle" in explain(
        ssl.SSLCertVerificationError("certificate verify failed")
    )


def test_an_unknown_error_is_one_line_cut_at_a_word_never_mid_word():
    said = explain(ValueError("first line " + "word " * 200 + "\nsecond line"))
    assert said.startswith("ValueError: first line word")
    assert "\n" not in said and "second" not in said
    assert len(said) <= 300 and said.endswith("word…")


def test_cut_keeps_short_text():
    assert cut("short", 10) == "short"


def test_a_child_processs_error_line_naming_a_known_fault_is_explained():
    from fedcloud_common.faults import explain_text

    line = (
        "Extractor nova: cannot extract records for 'aaa', got the following exception: "
        "keystoneauth1.exceptions.connection.ConnectFailure: Unable to establish connection"
    )
    assert explain_text(line).startswith("cannot reach the cloud: is it up")
    assert explain_text("projects not finished: aaa") is None
