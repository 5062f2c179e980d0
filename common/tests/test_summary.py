import pytest

from fedcloud_common.summary import format_summary, parse_summary


def test_formats_counts_in_order_with_duration():
    line = format_summary("image-sync", "ok", {"added": 2, "removed": 0}, 12.34)
    assert line == "image-sync ok added=2 removed=0 duration=12.3s"


def test_round_trips_through_the_parser():
    line = format_summary("bdii publish", "partial", {"error": "slapd down"}, 1)
    assert parse_summary(line) == (
        "bdii_publish",
        "partial",
        {"error": "slapd_down", "duration": "1.0s"},
    )


def test_other_log_lines_are_not_summaries():
    assert parse_summary("INFO downloading image 3 of 7") is None


def test_rejects_an_unknown_outcome():
    with pytest.raises(ValueError, match="outcome"):
        format_summary("x", "great", {}, 0)


def test_a_reason_rides_on_the_line_in_plain_words_and_parses_back():
    line = format_summary(
        "image-sync", "failed", {"errors": 1}, 2, reason="Glance refused\nthe upload: check X"
    )
    assert line == "image-sync failed errors=1 duration=2.0s -- Glance refused the upload: check X"
    assert parse_summary(line) == (
        "image-sync",
        "failed",
        {"errors": "1", "duration": "2.0s", "reason": "Glance refused the upload: check X"},
    )
