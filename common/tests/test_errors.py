from fedcloud_common.errors import FedcloudError


class ListExpiredError(FedcloudError):
    msg_fmt = "image list {url} expired on {date}"


def test_message_is_built_from_the_template():
    assert str(ListExpiredError(url="https://x/list", date="2026-01-01")) == (
        "image list https://x/list expired on 2026-01-01"
    )


def test_a_missing_field_still_gives_a_readable_message():
    assert "not given" in str(ListExpiredError(url="https://x/list"))
