"""The status page as an operator sees it: the real server, in a real browser.

The supervisor's web server runs in-process over a realistic scene
(``status_scene``: real history, real image status files); Debian's
chromium, headless and driven by Playwright, loads the page, and the tests
assert on what is rendered: visible text, computed colours, chart bars.

Without chromium the tests skip, unless FEDCLOUD_TEST_BROWSER=required (CI),
where they fail. FEDCLOUD_UPDATE_SCREENSHOTS=1 rewrites the screenshots in
``screenshots/`` (checked in: what the page looks like, for review).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.tests.status_scene import (
    BDII_REASON,
    BROKEN_IMAGE,
    GLANCE_ID,
    IMAGE,
    VERSION,
    FakeDocker,
    build,
)
from fedcloud_appliance import status, web
from fedcloud_appliance.metrics import ApplianceMetrics

SCREENSHOTS = Path(__file__).parent / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RED_BACKGROUND = "rgb(253, 231, 231)"  # page.py's --bad-bg


def _chromium() -> str:
    """Debian's chromium, or skip (fail where the browser is required)."""
    found = shutil.which("chromium")
    if found is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("FEDCLOUD_TEST_BROWSER") == "required":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh, temporary profile (user data dir).
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        yield launched
        launched.close()


@pytest.fixture
def serve() -> Iterator[object]:
    servers = []

    def start(collect, metrics=None) -> str:  # type: ignore[no-untyped-def]
        server = web.serve(0, collect, host="127.0.0.1", metrics=metrics)
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _open(browser, url: str, name: str):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.goto(url)
    if os.environ.get("FEDCLOUD_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    return page


def _background(locator) -> str:  # type: ignore[no-untyped-def]
    return locator.evaluate("e => getComputedStyle(e).backgroundColor")


def test_an_operator_sees_failures_images_services_and_history(browser, serve, tmp_path):
    scene = build(tmp_path)
    url = serve(scene.collect, ApplianceMetrics(scene.supervisor, scene.appliance).exposition)
    page = _open(browser, url, "status-page")

    assert page.title() == "FedCloud appliance · FEDCLOUD-DEMO"
    assert page.locator("#host").inner_text() == "cloud.example.org"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", page.locator("#version").inner_text())

    # The failed publish: its reason in plain words, and the retry to come.
    publish = page.locator("#job-bdii-publish")
    assert publish.locator(".badge.failed").inner_text() == "failed"
    reason = publish.locator(".reason")
    assert reason.is_visible() and reason.inner_text() == BDII_REASON
    assert "retry 1 of 3" in publish.locator(".retry").inner_text()
    assert re.search(r"UTC\s+in (3 min \d+ s|4 min)$", publish.locator(".retry").inner_text())
    # ... and in the summary at the top.
    attention = page.locator("#attention")
    assert f"bdii-publish failed: {BDII_REASON}" in attention.inner_text()
    assert "service site-bdii is running (unhealthy)" in attention.inner_text()

    # Each job's last runs as bars, coloured by outcome, the failure red.
    bars = publish.locator("svg.chart rect.bar")
    assert bars.count() == 20
    assert bars.last.evaluate("e => getComputedStyle(e).fill") == "rgb(198, 40, 40)"
    assert bars.first.evaluate("e => getComputedStyle(e).fill") == "rgb(46, 125, 50)"
    assert page.locator("#job-image-sync svg.chart rect.bar").count() == 13
    assert page.locator("#job-apel-send svg.chart rect.bar.failed").count() == 1

    # The sync in progress, with its elapsed time.
    sync = page.locator("#job-image-sync")
    assert sync.locator(".badge.running").is_visible()
    assert re.fullmatch(r"for 3 min( \d+ s)?", sync.locator(".elapsed").inner_text())

    # Images: the one in Glance with its id and version; the broken one and why.
    row = page.locator("tr.image", has_text=IMAGE)
    assert row.locator("td.glance").inner_text() == GLANCE_ID
    assert VERSION in row.inner_text() and "added" in row.inner_text()
    broken = page.locator("tr.image", has_text=BROKEN_IMAGE)
    assert "SHA-512 mismatch" in broken.inner_text()
    assert page.locator("#list-vo-demo .badge.error").inner_text() == "error"
    assert "never synced" in page.locator("#list-fresh-list").inner_text()

    # Services: the unhealthy one stands out, the healthy ones do not.
    assert _background(page.locator("#service-site-bdii td").first) == RED_BACKGROUND
    assert _background(page.locator("#service-resource-bdii td").first) != RED_BACKGROUND

    # Figures from the jobs' own summary lines.
    assert page.locator("#figure-bdii_entries .value").inner_text() == "1\u2009234"
    assert page.locator("#figure-records_extracted .value").inner_text() == "421"
    assert page.locator("#figure-messages_sent .value").inner_text() == "3"
    assert page.locator("#figure-images .value").inner_text() == "1 / 0 / 1"


def test_a_configuration_error_is_the_first_thing_on_the_page(browser, serve):
    problem = "images.schedul: not a known key; did you mean 'schedule'? <check appliance.yaml>"
    exited = FakeDocker(
        {"supervisor": ("running", "healthy"), "site-bdii": ("exited", "unhealthy")}
    )
    url = serve(lambda: status.config_problem(problem, exited, "fedcloud-appliance"))
    page = _open(browser, url, "config-error")

    banner = page.locator("#config-error")
    assert banner.is_visible()
    assert banner.bounding_box()["y"] < page.locator("#services").bounding_box()["y"]
    assert "Configuration error: no job runs until it is fixed" in banner.inner_text()
    assert problem in banner.locator("pre").inner_text()  # escaped, shown as written
    assert _background(banner) == RED_BACKGROUND
    assert _background(page.locator("#service-site-bdii td").first) == RED_BACKGROUND
    assert page.locator("#jobs").count() == 0  # nothing runs: no job table to misread


def test_a_new_appliance_says_its_images_were_never_synced(browser, serve, tmp_path):
    scene = build(tmp_path)
    empty = status.Appliance(site="NEW-SITE", image_state_dir=tmp_path / "nothing-yet")
    url = serve(lambda: status.collect(scene.supervisor, scene.docker, "fedcloud-appliance", empty))
    page = _open(browser, url, "never-synced")

    assert page.locator("#never-synced").is_visible()
    assert "never synced" in page.locator("#never-synced").inner_text()
    assert page.locator("#figure-images .value").inner_text() == "0 / 0 / 0"
