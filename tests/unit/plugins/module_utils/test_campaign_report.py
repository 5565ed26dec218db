"""The campaign report (campaign_report.py) of a real three-wave campaign that aborts (campaign_story.py), on both
stores: each device's timeline, the cumulative series, the SVG's geometry (axes, step lines, wave boundaries, abort
marker), the CSV; and the escaping of every text from the ledger or the user."""

from __future__ import annotations

import copy
import csv
import io
import os
import stat
import time
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from module_harness import clean_state_dir, ledger_location, module_runner, mount_fake

from ansible_collections.thingspace.m2m.plugins.module_utils import campaign as c
from ansible_collections.thingspace.m2m.plugins.module_utils import campaign_report as r
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, service_scope

from campaign_story import NAME, T0, three_wave_campaign
from fake_api import API

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def built(request, tmp_path_factory):
    """The campaign, built once per store: the tests only read its ledger."""
    directory = tmp_path_factory.mktemp("story")
    with pytest.MonkeyPatch.context() as monkeypatch:
        fake = mount_fake(monkeypatch)
        story = three_wave_campaign(module_runner(monkeypatch, clean_state_dir(directory, monkeypatch)), fake, ledger_location(request, directory),
                                    monkeypatch)
        fake.check_scripts_used()
    return story


@pytest.fixture
def story(built, monkeypatch):
    """The campaign, and the report's inputs as the info module reads them at T0 + 1000 (a reading of each test's own)."""
    monkeypatch.setattr(time, "time", lambda: built.now)
    ledger = Ledger(built.where, read_only=True)
    read = copy.copy(built)
    read.campaign = c.reading(ledger, service_scope(API), NAME, time.time())
    read.records = r.timeline(ledger, read.campaign)
    ledger.close()
    return read


def at(offset):
    return T0 + offset


def test_the_series_count_each_device_at_its_send_delivery_and_outcome(story):
    first, second, third = story.waves
    assert (len(first), len(second), len(third)) == (4, 8, 28)
    found = r.series(story.records)
    assert found["sent"] == [(at(0), 4), (at(120), 12), (at(300), 22), (at(310), 32), (at(320), 40)]
    # Delivered: a confirmation (or the reply) of 4 + 7 + 3 devices; the reply_error device was delivered too.
    assert found["delivered"] == [(at(20), 1), (at(30), 2), (at(40), 3), (at(50), 4), (at(140), 5), (at(145), 6), (at(150), 7), (at(155), 8),
                                  (at(160), 10), (at(165), 11), (at(350), 12), (at(520), 13), (at(530), 14)]
    assert found["replied"][-1] == (at(540), 13) and found["replied"][0] == (at(30), 1)
    # Failed: Undelivered (150), reply_error (210), Undelivered (400), Rejected (410), Expired (540), 22 timed out at 320 + 600.
    assert found["failed"] == [(at(150), 1), (at(210), 2), (at(400), 3), (at(410), 4), (at(540), 5), (at(920), 27)]
    figures = c.figures(story.campaign)
    assert (figures["sent"], figures["replied"], sum(figures["failures"].values())) == (40, 13, 27)
    assert r.wave_starts(story.records) == {1: at(0), 2: at(120), 3: at(300)}
    # The abort point is the crossing device's outcome, not the step that recorded it (t=500).
    assert story.campaign.abort_reason["device"] == {"kind": "mdn", "id": story.crossing}
    assert r.abort_point(story.campaign) == at(410)


def test_the_abort_point_is_the_time_the_abort_reason_names():
    assert r.abort_point(SimpleNamespace(state="aborted", abort_reason={"gate": 2, "needed": 3, "at": "2026-12-07T02:00:20Z"})) == T0 + 20
    assert r.abort_point(SimpleNamespace(state="waiting", abort_reason=None)) is None
    assert r.abort_point(SimpleNamespace(state="aborted", abort_reason={"gate": None, "at": None, "by_hand": True})) is None
    assert r.abort_point(SimpleNamespace(state="aborted", abort_reason={"by_hand": True, "at": "2026-12-07T02:00:10Z"})) == T0 + 10


def parse(svg):
    return ET.fromstring(svg)


def test_the_svg_draws_the_axes_the_four_step_lines_the_waves_and_the_abort(story):
    root = parse(r.svg(story.campaign, story.records, at(1000)))
    chart = r.Chart(at(0), at(920), 40)  # from the campaign's creation to its last event: it is final, so not to "now"
    assert (root.get("data-start"), root.get("data-end"), root.get("data-devices")) == ("2026-12-07T02:00:00Z", "2026-12-07T02:15:20Z", "40")
    bottom, right = r.HEIGHT - r.BOTTOM, r.WIDTH - r.RIGHT
    axes = {line.get("class"): line.attrib for line in root.iter(SVG + "line") if "axis" in (line.get("class") or "")}
    assert axes["axis x-axis"] == {"class": "axis x-axis", "x1": str(r.LEFT), "y1": str(bottom), "x2": str(right), "y2": str(bottom)}
    assert axes["axis y-axis"] == {"class": "axis y-axis", "x1": str(r.LEFT), "y1": str(r.TOP), "x2": str(r.LEFT), "y2": str(bottom)}
    ticks = [tick.get("data-value") for tick in root.iter(SVG + "g") if tick.get("class") == "tick y-tick"]
    assert ticks == ["0", "10", "20", "30", "40"]
    lines = {line.get("data-series"): line for line in root.iter(SVG + "polyline")}
    assert {name: line.get("data-final") for name, line in lines.items()} == {"sent": "40", "delivered": "14", "replied": "13", "failed": "27"}
    sent = [tuple(float(value) for value in point.split(",")) for point in lines["sent"].get("points").split()]
    # A step line: 0 from the start, up at each send, flat to the end.
    assert sent[0] == (r.LEFT, bottom) and sent[-1] == (right, r.TOP)
    assert sent[1:5] == [(r.LEFT, bottom), (r.LEFT, round(chart.y(4), 1)), (round(chart.x(at(120)), 1), round(chart.y(4), 1)),
                         (round(chart.x(at(120)), 1), round(chart.y(12), 1))]
    failed = [tuple(float(value) for value in point.split(",")) for point in lines["failed"].get("points").split()]
    assert failed[-2:] == [(right, round(chart.y(27), 1)), (right, round(chart.y(27), 1))]
    labels = {text.get("data-series"): text.text for text in root.iter(SVG + "text") if text.get("class") == "final-value"}
    assert labels == {"sent": "sent 40", "delivered": "delivered 14", "replied": "replied 13", "failed": "failed 27"}
    heights = sorted(float(text.get("y")) for text in root.iter(SVG + "text") if text.get("class") == "final-value")
    assert all(b - a >= 14 for a, b in zip(heights, heights[1:]))  # 14 and 13 are not drawn over each other
    waves = [group for group in root.iter(SVG + "g") if group.get("class") == "wave-boundary"]
    assert [(group.get("data-wave"), group.get("data-at"), float(group.find(SVG + "line").get("x1"))) for group in waves] == [
        ("1", "2026-12-07T02:00:00Z", r.LEFT), ("2", "2026-12-07T02:02:00Z", round(chart.x(at(120)), 1)),
        ("3", "2026-12-07T02:05:00Z", round(chart.x(at(300)), 1))]
    assert [group.find(SVG + "text").text for group in waves] == ["wave 1", "wave 2", "wave 3"]
    (marker,) = [group for group in root.iter(SVG + "g") if group.get("class") == "abort-marker"]
    assert (marker.get("data-at"), marker.get("data-failed")) == ("2026-12-07T02:06:50Z", "4")
    circle = marker.find(SVG + "circle")
    assert (float(circle.get("cx")), float(circle.get("cy"))) == (round(chart.x(at(410)), 1), round(chart.y(4), 1))
    assert marker.find(SVG + "title").text == ("aborted: abort criterion {failure: any, threshold: 25%%, min_devices: 12} met at device mdn:%s "
                                               "(4 of 15 finished devices failed)" % story.crossing)


def test_a_running_campaign_is_drawn_to_now_without_an_abort_marker(story):
    story.campaign.state, story.campaign.abort_reason = "waiting", None
    root = parse(r.svg(story.campaign, story.records, at(2000)))
    assert root.get("data-end") == "2026-12-07T02:33:20Z"
    assert not [group for group in root.iter(SVG + "g") if group.get("class") == "abort-marker"]


def test_the_csv_has_every_device_in_order_with_its_times(story):
    rows = list(csv.reader(io.StringIO(r.csv_text(story.records))))
    assert rows[0] == list(r.CSV_COLUMNS) and len(rows) == 41
    by_id = {row[1]: row for row in rows[1:]}
    assert [row[1] for row in rows[1:]] == [device.target.split(":")[1] for device in story.campaign.devices]
    first = story.waves[0][0]
    assert by_id[first][:4] == ["mdn", first, "1", "replied"]
    assert by_id[first][5:] == ["2026-12-07T02:00:00Z", "2026-12-07T02:00:20Z", "2026-12-07T02:00:30Z"]
    assert by_id[story.crossing][2:4] == ["3", "rejected"] and by_id[story.crossing][6:] == ["", "2026-12-07T02:06:50Z"]
    assert by_id[story.waves[1][7]][3] == "reply_error" and by_id[story.waves[1][7]][6] == "2026-12-07T02:02:40Z"
    silent = by_id[story.waves[2][-1]]
    assert silent[3] == "timed_out" and silent[5:] == ["2026-12-07T02:05:20Z", "", "2026-12-07T02:15:20Z"]
    assert all(row[4] for row in rows[1:])  # every device was sent: each has its request id


def test_a_spreadsheet_formula_in_a_cell_is_quoted():
    assert [r._cell(value) for value in ("=HYPERLINK(1)", "+1", "-1", "@SUM(A1)", "5550000001", None, 3)] == [
        "'=HYPERLINK(1)", "'+1", "'-1", "'@SUM(A1)", "5550000001", "", "3"]


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_every_text_from_the_ledger_or_the_user_is_escaped(story):
    hostile = '<img src=x onerror="alert(1)">&</svg><script>'
    story.campaign.name = hostile
    story.campaign.abort_reason = dict(story.campaign.abort_reason, criterion=dict(story.campaign.abort_reason["criterion"], failure=hostile))
    page = r.html(story.campaign, dict(c.figures(story.campaign), campaign_state=hostile), story.records, at(1000), 'a"b<c>.csv')
    parsed = Elements()
    parsed.feed(page)
    assert "img" not in parsed.tags and "script" not in parsed.tags
    # The page title, the heading, the state, the abort reason, the chart title and the abort marker title: all as text.
    assert "".join(parsed.text).count(hostile) == 6
    svg = page[page.index("<svg"):page.index("</svg>") + 6]
    root = parse(svg)  # still one well-formed SVG
    assert root.find(SVG + "title").text == "Campaign %s: devices sent, delivered, replied and failed over time" % hostile
    assert '<a href="a%22b%3Cc%3E.csv" id="devices-csv">a&quot;b&lt;c&gt;.csv</a>' in page


def test_a_campaign_nothing_was_sent_to_yet_is_drawn_flat_to_now(where):
    ledger = Ledger(where)
    definition = dict(c.DEFAULT_DEFINITION, waves=[1, "100%"], message="hash", data_encoding="7-bit", selection={"devices": 3})
    c._create(ledger, service_scope(API), "empty", "0000123456-00001", definition, dict(c.DEFAULT_POLICY), ["mdn:555000000%d" % n for n in range(3)],
              T0, False)
    ledger.close()
    ledger = Ledger(where, read_only=True)
    campaign = c.reading(ledger, service_scope(API), "empty", T0 + 60)
    records = r.timeline(ledger, campaign)
    ledger.close()
    assert r.series(records) == {"sent": [], "delivered": [], "replied": [], "failed": []} and r.wave_starts(records) == {}
    root = parse(r.svg(campaign, records, T0 + 60))
    assert (root.get("data-start"), root.get("data-end")) == ("2026-12-07T02:00:00Z", "2026-12-07T02:01:00Z")
    bottom, right = r.HEIGHT - r.BOTTOM, r.WIDTH - r.RIGHT
    assert {line.get("data-series"): (line.get("data-final"), line.get("points")) for line in root.iter(SVG + "polyline")} == {
        name: ("0", "%d.0,%d.0 %d.0,%d.0" % (r.LEFT, bottom, right, bottom)) for name in r.SERIES}
    assert [tick.get("data-value") for tick in root.iter(SVG + "g") if tick.get("class") == "tick y-tick"] == ["0", "1", "2", "3"]
    assert not [group for group in root.iter(SVG + "g") if group.get("class") in ("wave-boundary", "abort-marker")]
    assert r.csv_text(records).splitlines()[1:] == ["mdn,%s,%d,pending,,,," % (device.target.split(":")[1], device.wave) for device in campaign.devices]


class Page(HTMLParser):
    """The text of each element with an id, the cells of each table row, the attributes of every element."""

    def __init__(self):
        super().__init__()
        self.open, self.by_id, self.rows, self.elements = [], {}, [], []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self.rows[-1].append("")
        if tag not in ("meta", "i"):
            self.open.append(attributes.get("id"))

    def handle_endtag(self, tag):
        if tag not in ("meta", "i"):
            self.open.pop()

    def handle_data(self, data):
        for element in self.open:
            if element:
                self.by_id[element] = self.by_id.get(element, "") + data
        if self.rows and self.open and self.open[-1] is None and self.elements[-1][0] in ("td", "th"):
            self.rows[-1][-1] += data


def test_the_page_states_the_figures_the_abort_the_waves_and_links_the_csv(story):
    figures = dict(c.figures(story.campaign), campaign_state="aborted")
    page = r.html(story.campaign, figures, story.records, at(1000), "apn 2026.csv")
    found = Page()
    found.feed(page)
    assert page.startswith('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">') and page.endswith("</body></html>\n")
    assert ("meta", {"http-equiv": "Content-Security-Policy", "content": "default-src 'none'; style-src 'unsafe-inline'"}) in found.elements
    assert "<title>Campaign apn-2026-12</title>" in page
    assert ("span", {"class": "state state-aborted", "id": "campaign-state"}) in found.elements and found.by_id["campaign-state"] == "aborted"
    # The figures of campaign_story's docstring: the devices by state (a device that replied is not counted delivered).
    assert found.by_id["summary"] == ("Wave 3 of 3; 40 devices: 40 sent, 0 delivered, 13 replied, 0 pending, unconfirmed 0; failures: 2 undelivered,"
                                      " 1 expired, 1 rejected, 22 timed_out, 1 reply_error. Read from the ledger at 2026-12-07T02:16:40Z.")
    assert found.by_id["abort-reason"] == ("Aborted: abort criterion {failure: any, threshold: 25%%, min_devices: 12} met at device mdn:%s"
                                           " (4 of 15 finished devices failed)" % story.crossing)
    assert [[cell.strip() for cell in row] for row in found.rows] == [
        ["wave", "devices", "sent", "delivered", "replied", "failed", "pending", "gate (succeeded of needed)"],
        ["1", "4", "4", "0", "4", "0", "0", "passed (4 of 3)"],
        ["2", "8", "8", "0", "6", "2", "0", "passed (6 of 6)"],
        ["3", "28", "28", "0", "3", "25", "0", "failed (3 of 21)"]]
    assert found.by_id["waves"].replace("\n", "") == "".join(cell for row in found.rows for cell in row).replace("\n", "")  # nothing but the cells
    assert [attributes["class"] for tag, attributes in found.elements if tag in ("td", "th") and "class" in attributes] == ["text"] * 4
    legend = [(attributes.get("data-series"), attributes.get("style")) for tag, attributes in found.elements if tag in ("span", "i")][1:9]
    assert legend == [pair for name in r.SERIES for pair in ((name, None), (None, "background: %s" % r.COLORS[name]))]
    assert '<i style="background: #4c78a8"></i>%s</span>' % r.LEGEND["sent"] in page
    assert ("a", {"href": "apn%202026.csv", "id": "devices-csv"}) in found.elements and found.by_id["devices-csv"] == "apn 2026.csv"


def test_a_campaign_without_failures_says_none():
    campaign = SimpleNamespace(name="quiet", state="completed", abort_reason=None, devices=[], devices_total=0, created_at=T0)
    figures = {"campaign_state": "completed", "wave": 1, "waves_total": 1, "devices_total": 0, "sent": 0, "delivered": 0, "replied": 0, "pending": 0,
               "unconfirmed": 0, "failures": {"undelivered": 0}, "abort_reason": None, "waves": []}
    page = r.html(campaign, figures, [], T0, "quiet.csv")
    assert "failures: none." in page and 'id="abort-reason"' not in page


def test_a_report_file_is_written_beside_itself_then_put_in_place_readable_by_all(tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    path.write_text("the last report")
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda source, target: replaced.append((source, path.read_text())) or real_replace(source, target))
    r.write(str(path), "the new report ✓\r\n")
    ((temporary, meanwhile),) = replaced
    assert os.path.dirname(temporary) == str(tmp_path) and os.path.basename(temporary).startswith(".report.html.")
    assert meanwhile == "the last report"  # until the new one is whole
    assert path.read_bytes() == "the new report ✓\r\n".encode() and stat.S_IMODE(path.stat().st_mode) == 0o644
    with pytest.raises(TypeError):
        r.write(str(path), None)
    assert sorted(os.listdir(tmp_path)) == ["report.html"] and path.read_bytes() == "the new report ✓\r\n".encode()


def test_every_mark_of_the_chart_sits_where_the_layout_puts_it(story):
    root = parse(r.svg(story.campaign, story.records, at(1000)))
    chart = r.Chart(at(0), at(920), 40)
    bottom, right = r.HEIGHT - r.BOTTOM, r.WIDTH - r.RIGHT
    assert {name: root.get(name) for name in ("viewBox", "width", "height", "role", "aria-labelledby")} == {
        "viewBox": "0 0 %d %d" % (r.WIDTH, r.HEIGHT), "width": str(r.WIDTH), "height": str(r.HEIGHT), "role": "img", "aria-labelledby": "chart-title"}
    # Text only inside text and title elements: nothing stray between the marks.
    for element in root.iter():
        assert not (element.tail or "").strip(), element.tag
        if element.tag not in (SVG + "text", SVG + "title"):
            assert not (element.text or "").strip(), element.tag

    def groups(kind):
        return [group for group in root.iter(SVG + "g") if group.get("class") == kind]

    def number(element, name):
        return float(element.get(name))

    for tick in groups("tick y-tick"):
        line, text = tick.find(SVG + "line"), tick.find(SVG + "text")
        assert (number(line, "x1"), number(line, "x2"), number(text, "x")) == (r.LEFT, right, r.LEFT - 6)
        assert number(line, "y1") == number(line, "y2") == round(chart.y(int(tick.get("data-value"))), 1) and number(text, "y") == number(line, "y1") + 4
    times = []
    for tick in groups("tick x-tick"):
        line, text = tick.find(SVG + "line"), tick.find(SVG + "text")
        times.append(tick.get("data-time"))
        assert (number(line, "y1"), number(line, "y2"), number(text, "y")) == (bottom, bottom + 5, bottom + 18)
        assert number(line, "x1") == number(line, "x2") == number(text, "x") and text.text == tick.get("data-time")[11:19]
    assert times == ["2026-12-07T02:00:00Z", "2026-12-07T02:03:50Z", "2026-12-07T02:07:40Z", "2026-12-07T02:11:30Z", "2026-12-07T02:15:20Z"]
    labels = {text.text: text for text in root.iter(SVG + "text") if text.get("class") == "axis-label"}
    assert {name: (text.get("x"), text.get("y"), text.get("transform")) for name, text in labels.items()} == {
        "time (UTC, 2026-12-07)": (str((r.LEFT + right) // 2), str(r.HEIGHT - 12), None),
        "devices": ("14", str((r.TOP + bottom) // 2), "rotate(-90 14 %d)" % ((r.TOP + bottom) // 2))}
    for group in groups("wave-boundary"):
        line, text = group.find(SVG + "line"), group.find(SVG + "text")
        assert (number(line, "y1"), number(line, "y2"), number(text, "x"), number(text, "y")) == (r.TOP, bottom, number(line, "x1") + 3, r.TOP + 10)
    finals = {text.get("data-series"): text for text in root.iter(SVG + "text") if text.get("class") == "final-value"}
    assert {name: (text.get("x"), text.get("fill")) for name, text in finals.items()} == {name: (str(right + 6), r.COLORS[name]) for name in r.SERIES}
    assert [number(finals[name], "y") for name in ("sent", "failed")] == [round(chart.y(40) + 4, 1), round(chart.y(27) + 4, 1)]
    (marker,) = groups("abort-marker")
    line, circle, text = marker.find(SVG + "line"), marker.find(SVG + "circle"), marker.find(SVG + "text")
    assert (number(line, "y1"), number(line, "y2"), circle.get("r")) == (r.TOP, bottom, "5")
    assert (number(text, "x"), number(text, "y"), text.text) == (number(circle, "cx") - 4, r.TOP + 24, "aborted")
