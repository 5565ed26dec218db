# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report of one campaign (docs/design.md, "The campaign report"): each device's timeline from the ledger, the
cumulative series sent / delivered / replied / failed over time, and their rendering as one self-contained HTML page
(inline CSS and SVG, no script, no external asset: its Content-Security-Policy forbids loading anything) and a
per-device CSV. Every text from the ledger or the user is escaped."""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from datetime import datetime, timezone
from html import escape
from urllib.parse import quote

from ansible_collections.thingspace.m2m.plugins.module_utils.campaign import FAILURES, RANKS, abort_text, finished
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import delivery_states
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import iso_time
from ansible_collections.thingspace.m2m.plugins.module_utils.send import device_of

SERIES = ("sent", "delivered", "replied", "failed")
COLORS = {"sent": "#4c78a8", "delivered": "#54a24b", "replied": "#b279a2", "failed": "#e45756"}
LEGEND = {"sent": "sent (the request was made, or is unconfirmed)", "delivered": "delivered (a Delivered confirmation, or a reply)",
          "replied": "replied (a reply matching reply_pattern)", "failed": "failed (" + ", ".join(FAILURES) + ")"}
CSV_COLUMNS = ("kind", "id", "wave", "state", "request_id", "sent_at", "delivered_at", "finished_at")
# The chart's size and margins (SVG user units).
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 900, 380, 64, 120, 24, 56
TICKS = 5
# A spreadsheet runs a cell that starts with one of these as a formula: such a cell is written with a leading quote.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


# --- the data ---------------------------------------------------------------------------------------------------


def timeline(ledger, campaign):
    """Each device of ``campaign`` (read by campaign.reading) in the campaign's order: {target, wave, state, request_id,
    sent_at, delivered_at, finished_at}, ledger times. ``delivered_at``: its Delivered confirmation, or its reply when
    that is earlier or there is no confirmation (a reply proves delivery); ``finished_at``: its outcome's time."""
    confirmed = delivery_states(ledger, {device.target: device.request_id for device in campaign.devices if device.request_id})
    records = []
    for device in campaign.devices:
        state, at, _aliases = confirmed.get(device.target, (None, None, ()))
        delivered_at = at if state == "Delivered" else None
        if device.state in ("replied", "reply_error") and device.finished_at is not None:
            delivered_at = device.finished_at if delivered_at is None else min(delivered_at, device.finished_at)
        outcome = device.finished_at if finished(device.state, campaign.success) else None
        records.append({"target": device.target, "wave": device.wave, "state": device.state, "request_id": device.request_id,
                        "sent_at": device.sent_at if RANKS[device.state] >= 1 else None, "delivered_at": delivered_at, "finished_at": outcome})
    return records


def series(records):
    """{series: [(time, devices so far)]}, one point per distinct time, in time order. ``sent`` counts devices at their
    send, ``delivered`` at their delivery, ``replied`` and ``failed`` at their outcome (by their state now)."""
    times = {
        "sent": [record["sent_at"] for record in records if record["sent_at"] is not None],
        "delivered": [record["delivered_at"] for record in records if record["delivered_at"] is not None],
        "replied": [record["finished_at"] for record in records if record["state"] == "replied" and record["finished_at"] is not None],
        "failed": [record["finished_at"] for record in records if record["state"] in FAILURES and record["finished_at"] is not None],
    }
    found = {}
    for name, values in times.items():
        points = []
        for count, at in enumerate(sorted(values), 1):
            if points and points[-1][0] == at:
                points[-1] = (at, count)
            else:
                points.append((at, count))
        found[name] = points
    return found


def wave_starts(records):
    """{wave: the time of its first send}, for the waves that started."""
    starts = {}
    for record in records:
        if record["sent_at"] is not None:
            starts[record["wave"]] = min(starts.get(record["wave"], math.inf), record["sent_at"])
    return dict(sorted(starts.items()))


def abort_point(campaign):
    """When the campaign was aborted (ledger time), or None: the time its abort reason records (campaign.decide: the
    crossing device's outcome, the failure after which a gate could no longer pass, or the step that aborted it by hand)."""
    reason = campaign.abort_reason
    if campaign.state != "aborted" or not reason or not reason.get("at"):
        return None
    return datetime.fromisoformat(reason["at"].replace("Z", "+00:00")).timestamp()


# --- the chart ---------------------------------------------------------------------------------------------------


class Chart:
    """The time and device axes of the chart: ``x(time)`` and ``y(devices)`` in SVG units."""

    def __init__(self, start, end, devices):
        self.start, self.end = start, end if end > start else start + 1.0
        self.top = max(1, devices)

    def x(self, at):
        return LEFT + (at - self.start) / (self.end - self.start) * (WIDTH - LEFT - RIGHT)

    def y(self, devices):
        return HEIGHT - BOTTOM - devices / self.top * (HEIGHT - TOP - BOTTOM)

    def points(self, points):
        """A series' step line: flat at each count until the next point, from the chart's start to its end."""
        line, count = [(self.start, 0)], 0
        for at, value in points:
            line += [(at, count), (at, value)]
            count = value
        line.append((self.end, count))
        return " ".join("%.1f,%.1f" % (self.x(at), self.y(value)) for at, value in line)

    def device_ticks(self):
        return sorted({round(self.top * index / (TICKS - 1)) for index in range(TICKS)})

    def time_ticks(self):
        return [self.start + (self.end - self.start) * index / (TICKS - 1) for index in range(TICKS)]


def _spread(heights, gap=14):
    """Label heights moved down just enough that no two are closer than ``gap`` (equal final values stay readable)."""
    placed, last = {}, -math.inf
    for name, y in sorted(heights.items(), key=lambda item: item[1]):
        last = placed[name] = max(y, last + gap)
    return placed


def _clock(at):
    return datetime.fromtimestamp(at, timezone.utc).strftime("%H:%M:%S")


def svg(campaign, records, generated_at):
    """The chart of ``campaign`` as an inline SVG element: axes, one step line per series (``data-series``,
    ``data-final``), the first send of each wave (``wave-boundary``), the abort point (``abort-marker``)."""
    found = series(records)
    starts = wave_starts(records)
    aborted = abort_point(campaign)
    moments = [at for points in found.values() for at, _count in points] + list(starts.values())
    if aborted is not None:
        moments.append(aborted)
    start = min([campaign.created_at, *moments])
    chart = Chart(start, max([generated_at if campaign.state not in ("completed", "aborted") else start, *moments]), campaign.devices_total)
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    out = ['<svg xmlns="http://www.w3.org/2000/svg" id="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="chart-title" '
           'data-start="%s" data-end="%s" data-devices="%d">' % (WIDTH, HEIGHT, WIDTH, HEIGHT, iso_time(chart.start), iso_time(chart.end),
                                                                 campaign.devices_total),
           '<title id="chart-title">%s</title>' % escape("Campaign %s: devices sent, delivered, replied and failed over time" % campaign.name),
           '<g class="axes">',
           '<line class="axis x-axis" x1="%d" y1="%d" x2="%d" y2="%d"/>' % (LEFT, bottom, right, bottom),
           '<line class="axis y-axis" x1="%d" y1="%d" x2="%d" y2="%d"/>' % (LEFT, TOP, LEFT, bottom)]
    for value in chart.device_ticks():
        y = chart.y(value)
        out.append('<g class="tick y-tick" data-value="%d"><line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>'
                   '<text x="%d" y="%.1f" text-anchor="end">%d</text></g>' % (value, LEFT, y, right, y, LEFT - 6, y + 4, value))
    for at in chart.time_ticks():
        x = chart.x(at)
        out.append('<g class="tick x-tick" data-time="%s"><line x1="%.1f" y1="%d" x2="%.1f" y2="%d"/><text x="%.1f" y="%d" text-anchor="middle">'
                   '%s</text></g>' % (iso_time(at), x, bottom, x, bottom + 5, x, bottom + 18, _clock(at)))
    out.append('<text class="axis-label" x="%d" y="%d" text-anchor="middle">time (UTC, %s)</text>'
               % ((LEFT + right) // 2, HEIGHT - 12, datetime.fromtimestamp(chart.start, timezone.utc).strftime("%Y-%m-%d")))
    out.append('<text class="axis-label" x="14" y="%d" text-anchor="middle" transform="rotate(-90 14 %d)">devices</text>'
               % ((TOP + bottom) // 2, (TOP + bottom) // 2))
    out.append('</g><g class="waves">')
    for wave, at in starts.items():
        x = chart.x(at)
        out.append('<g class="wave-boundary" data-wave="%d" data-at="%s"><line x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>'
                   '<text x="%.1f" y="%d">wave %d</text></g>' % (wave, iso_time(at), x, TOP, x, bottom, x + 3, TOP + 10, wave))
    out.append('</g><g class="series">')
    finals = {name: found[name][-1][1] if found[name] else 0 for name in SERIES}
    labels = _spread({name: chart.y(final) + 4 for name, final in finals.items()})
    for name in SERIES:
        out.append('<polyline class="series-line" data-series="%s" data-final="%d" stroke="%s" points="%s"/>'
                   % (name, finals[name], COLORS[name], chart.points(found[name])))
        out.append('<text class="final-value" data-series="%s" x="%d" y="%.1f" fill="%s">%s %d</text>'
                   % (name, right + 6, labels[name], COLORS[name], name, finals[name]))
    out.append("</g>")
    if aborted is not None:
        x = chart.x(aborted)
        failed = max([count for at, count in found["failed"] if at <= aborted] or [0])
        out.append('<g class="abort-marker" data-at="%s" data-failed="%d"><title>%s</title><line x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>'
                   '<circle cx="%.1f" cy="%.1f" r="5"/><text x="%.1f" y="%d" text-anchor="end">aborted</text></g>'
                   % (iso_time(aborted), failed, escape("aborted: " + abort_text(campaign.abort_reason)), x, TOP, x, bottom, x, chart.y(failed),
                      x - 4, TOP + 24))
    out.append("</svg>")
    return "\n".join(out)


# --- the page and the CSV ----------------------------------------------------------------------------------------

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 24px; max-width: 1040px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.state { display: inline-block; padding: 1px 8px; border-radius: 9px; background: #eee; font-weight: 600; }
.state-aborted { background: #fbd5d5; } .state-completed { background: #d5f0d5; }
.abort { border-left: 4px solid #e45756; padding: 6px 12px; background: #fff4f4; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; } th { background: #f4f4f4; }
td.text, th.text { text-align: left; }
#chart .axis { stroke: #333; } #chart .grid { stroke: #e4e4e4; } #chart .tick text, #chart .axis-label { font-size: 11px; fill: #444; }
#chart .x-tick line { stroke: #333; }
#chart .series-line { fill: none; stroke-width: 2; } #chart .final-value { font-size: 12px; font-weight: 600; }
#chart .wave-boundary line { stroke: #888; stroke-dasharray: 4 3; } #chart .wave-boundary text { font-size: 11px; fill: #555; }
#chart .abort-marker line { stroke: #e45756; stroke-width: 2; } #chart .abort-marker circle { fill: #e45756; }
#chart .abort-marker text { font-size: 12px; font-weight: 600; fill: #e45756; }
.legend span { display: inline-block; margin-right: 16px; } .legend i { display: inline-block; width: 14px; height: 3px; vertical-align: middle;
margin-right: 4px; }
"""


def html(campaign, figures, records, generated_at, csv_name):
    """The report page: the campaign's state and figures, the abort reason, the chart, the per-wave table, a link to the
    CSV (``csv_name``: its path relative to the page)."""
    name, state = escape(campaign.name), escape(figures["campaign_state"])
    rows = []
    for wave in figures["waves"]:
        gate = wave["gate"]
        rows.append("<tr><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td class=\"text\">%s (%d of %d)</td></tr>"
                    % (wave["wave"], wave["devices"], wave["sent"], wave["delivered"], wave["replied"], sum(wave["failures"].values()),
                       wave["pending"], escape(gate["state"]), gate["succeeded"], gate["needed"]))
    failures = ", ".join("%d %s" % (count, failure) for failure, count in figures["failures"].items() if count) or "none"
    abort = ""
    if figures["abort_reason"]:
        abort = '<p class="abort" id="abort-reason">Aborted: %s</p>' % escape(abort_text(figures["abort_reason"]))
    legend = "".join('<span data-series="%s"><i style="background: %s"></i>%s</span>' % (series_name, COLORS[series_name], escape(LEGEND[series_name]))
                     for series_name in SERIES)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Nothing may be loaded from anywhere: the page is the whole report.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        "<title>Campaign %s</title>" % name,
        "<style>%s</style></head><body>" % _STYLE,
        '<h1>Campaign %s <span class="state state-%s" id="campaign-state">%s</span></h1>' % (name, state, state),
        '<p id="summary">Wave %d of %d; %d devices: %d sent, %d delivered, %d replied, %d pending, unconfirmed %d; failures: %s. '
        "Read from the ledger at %s.</p>" % (figures["wave"], figures["waves_total"], figures["devices_total"], figures["sent"],
                                             figures["delivered"], figures["replied"], figures["pending"], figures["unconfirmed"], escape(failures),
                                             iso_time(generated_at)),
        abort,
        "<h2>Devices over time</h2>",
        '<p class="legend">%s</p>' % legend,
        svg(campaign, records, generated_at),
        "<h2>Waves</h2>",
        '<table id="waves"><tr><th>wave</th><th>devices</th><th>sent</th><th>delivered</th><th>replied</th><th>failed</th><th>pending</th>'
        '<th class="text">gate (succeeded of needed)</th></tr>',
        "\n".join(rows),
        "</table>",
        '<p>Every device, its wave, state, request id and times: <a href="%s" id="devices-csv">%s</a>.</p>' % (escape(quote(csv_name)), escape(csv_name)),
        "</body></html>",
        "",
    ])


def _cell(value):
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def csv_text(records):
    """The per-device CSV: CSV_COLUMNS, one row per device in the campaign's order, times in ISO 8601 UTC."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        device = device_of(record["target"])
        writer.writerow([_cell(value) for value in (
            device["kind"], device["id"], record["wave"], record["state"], record["request_id"],
            *(None if record[at] is None else iso_time(record[at]) for at in ("sent_at", "delivered_at", "finished_at")))])
    return out.getvalue()


def write(path, text):
    """Replace the file ``path`` with ``text`` at once (a reader never sees half a report)."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def csv_path(report, report_csv=None):
    """Where the CSV goes: ``report_csv``, else beside the page with the suffix .csv (report.html → report.csv)."""
    if report_csv:
        return report_csv
    return os.path.splitext(report)[0] + ".csv"


def write_report(ledger, campaign, figures, path, csv_file, now):
    """Write the page ``path`` and the CSV ``csv_file`` of ``campaign`` (as read at ``now``), the CSV first, so the page
    never links to a CSV not written."""
    records = timeline(ledger, campaign)
    write(csv_file, csv_text(records))
    link = os.path.relpath(os.path.abspath(csv_file), os.path.dirname(os.path.abspath(path))).replace(os.sep, "/")
    write(path, html(campaign, figures, records, now, link))
