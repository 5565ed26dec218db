"""The campaign report as a browser shows it: vz_sms_campaign_info writes the report of a real three-wave campaign
that aborts (campaign_story.py), and the system's Chromium (Debian package chromium; `make chromium` installs it),
headless under Playwright, renders it: the chart's four series with their final values, the wave boundaries and the
abort marker where they belong, and not one request but the file itself. The screenshot goes to the path in
CAMPAIGN_REPORT_SCREENSHOT when set (docs/docsite/rst/campaign_report.png is made so)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_campaign_info

from campaign_story import NAME, three_wave_campaign

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("%s is missing: run `make chromium` (apt-get install chromium) before the unit tests" % CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_the_report_renders_its_chart_offline_in_chromium(run_module, fake, tmp_path, monkeypatch, browser):
    story = three_wave_campaign(run_module, fake, str(tmp_path / "ledger.sqlite3"), monkeypatch)
    report = tmp_path / "apn report.html"
    result, failed = run_module(vz_sms_campaign_info.main, **story.args, name=NAME, report=str(report))
    assert not failed and result["report_files"]["csv"] == str(tmp_path / "apn report.csv")
    url = report.as_uri()
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    requests, refused, errors = [], [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    def only_the_file(route):
        requests.append(route.request.url)
        if route.request.url == url:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_file)
    page.goto(url)
    page.wait_for_load_state("load")
    assert requests == [url] and refused == [] and errors == []

    assert page.title() == "Campaign apn-2026-12"
    assert page.locator("#campaign-state").inner_text() == "aborted"
    series = page.eval_on_selector_all("#chart polyline", "lines => lines.map(l => [l.dataset.series, l.dataset.final, l.getTotalLength() > 0])")
    assert series == [["sent", "40", True], ["delivered", "14", True], ["replied", "13", True], ["failed", "27", True]]
    labels = page.eval_on_selector_all("#chart .final-value", "texts => texts.map(t => t.textContent)")
    assert labels == ["sent 40", "delivered 14", "replied 13", "failed 27"]
    # Drawn where the numbers say: x of each wave's first send and of the abort, in the page's pixels.
    boxes = page.eval_on_selector_all("#chart .x-axis, .wave-boundary line, .abort-marker circle",  # in the document's order
                                      "items => items.map(i => { const b = i.getBoundingClientRect(); return [b.left, b.right, b.width]; })")
    axis, wave1, wave2, wave3, abort = boxes
    assert axis[2] > 700 and axis[0] <= wave1[0] < wave2[0] < wave3[0] < abort[0] < axis[1]
    assert page.eval_on_selector_all(".wave-boundary text", "texts => texts.map(t => t.textContent)") == ["wave 1", "wave 2", "wave 3"]
    assert page.locator(".abort-marker").get_attribute("data-at") == "2026-12-07T02:06:50Z"
    assert page.locator(".abort-marker circle").is_visible()
    assert page.locator("#abort-reason").inner_text() == ("Aborted: abort criterion {failure: any, threshold: 25%%, min_devices: 12} met at device "
                                                          "mdn:%s (4 of 15 finished devices failed)" % story.crossing)
    assert page.locator("#waves tr").count() == 4
    assert page.locator("#devices-csv").get_attribute("href") == "apn%20report.csv"
    assert page.locator("#devices-csv").inner_text() == "apn report.csv"

    shot = tmp_path / "campaign_report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10000
    if os.environ.get("CAMPAIGN_REPORT_SCREENSHOT"):
        shutil.copyfile(shot, Path(os.environ["CAMPAIGN_REPORT_SCREENSHOT"]))
