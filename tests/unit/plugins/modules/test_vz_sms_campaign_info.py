"""vz_sms_campaign_info over a real three-wave campaign that aborts (campaign_story.py), on both stores: the figures a
step returns, every campaign of the API URL, the devices of a state fed to a retry campaign, the report's files,
check mode, and the failures (no ledger, an unknown campaign, report paths) before anything is read or written."""

from __future__ import annotations

import csv
import sqlite3

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger
from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_campaign, vz_sms_campaign_info

from campaign_story import NAME, NEXT, ledger_args, three_wave_campaign
from fake_api import ACCOUNT, API

LOCALHOST = "http://localhost:9"


@pytest.fixture
def story(run_module, fake, where, monkeypatch):
    return three_wave_campaign(run_module, fake, where, monkeypatch)


def info(run_module, story, check_mode=False, **args):
    return run_module(vz_sms_campaign_info.main, check_mode=check_mode, **story.args, **args)


def test_the_figures_are_those_a_step_returns_and_nothing_is_written(run_module, story, fake):
    calls = len(fake.calls)
    result, failed = info(run_module, story, name=NAME)
    assert not failed and not result["changed"]
    assert result["msg"] == "Campaign apn-2026-12: aborted, wave 3 of 3; 40 of 40 devices sent, 0 delivered, 13 replied, 27 failed, 0 pending"
    assert len(fake.calls) == calls  # no ThingSpace request
    step, failed = run_module(vz_sms_campaign.main, check_mode=True, **story.args, **NEXT)
    assert not failed
    figures = {name: step[name] for name in ("campaign", "campaign_state", "wave", "waves_total", "devices_total", "waves", "sent", "unconfirmed",
                                             "delivered", "replied", "failures", "pending", "skipped_inactive", "abort_reason")}
    assert {name: result[name] for name in figures} == figures and result["campaigns"] == [figures]
    assert result["failures"] == {"undelivered": 2, "expired": 1, "rejected": 1, "timed_out": 22, "reply_error": 1, "refused": 0}
    assert result["abort_reason"]["device"] == {"kind": "mdn", "id": story.crossing}


def test_the_timeouts_are_read_as_a_step_would_find_them(run_module, story):
    # The ledger still holds the wave-3 devices as sent (the last step ran at t=500); at t=1000 they are past the timeout.
    story.at(900)
    before, _failed = info(run_module, story, name=NAME)
    story.at(1000)
    after, _failed = info(run_module, story, name=NAME)
    assert (before["failures"]["timed_out"], after["failures"]["timed_out"]) == (0, 22)


def test_the_devices_of_a_state_feed_a_retry_campaign(run_module, story, fake):
    result, failed = info(run_module, story, name=NAME, states=["timed_out"])
    assert not failed and len(result["devices"]) == 22
    # Wave 3's devices after the first six (which finished), in the campaign's order (its send order).
    assert result["devices"] == [{"kind": "mdn", "id": mdn} for mdn in story.waves[2][6:]]
    assert {device["state"] for device in result["device_details"]} == {"timed_out"}
    assert result["device_details"][0]["finished_at"] == "2026-12-07T02:15:20Z" and result["device_details"][0]["wave"] == 3
    result, failed = info(run_module, story, name=NAME, states=["undelivered", "rejected"])
    assert sorted(device["id"] for device in result["devices"]) == sorted([story.waves[1][6], story.waves[2][1], story.crossing])
    timed_out = info(run_module, story, name=NAME, states=["timed_out"])[0]["devices"]
    before = len(fake.calls)
    retry, failed = run_module(vz_sms_campaign.main, **story.args, name="apn-2026-12-retry-1", account_name=ACCOUNT, devices=timed_out,
                               sms_message="APN=iot.example")
    assert not failed and retry["devices_sent"] == 22
    sent = [device["id"] for method, path, body in fake.calls[before:] if path == "/api/m2m/v1/sms" for device in body["deviceIds"]]
    assert sorted(sent) == sorted(device["id"] for device in timed_out)
    result, failed = info(run_module, story)
    assert not failed and [entry["campaign"] for entry in result["campaigns"]] == [NAME, "apn-2026-12-retry-1"]
    assert result["msg"] == "2 campaign(s) under %s: 1 aborted, 1 waiting" % API and "campaign_state" not in result


def test_the_report_and_its_csv_are_written_beside_each_other(run_module, story, tmp_path):
    page = tmp_path / "rollout.html"
    result, failed = info(run_module, story, check_mode=True, name=NAME, report=str(page))
    assert not failed and result["changed"] and result["report_files"] == {"html": str(page), "csv": str(tmp_path / "rollout.csv"), "written": False}
    assert not page.exists() and not (tmp_path / "rollout.csv").exists()
    result, failed = info(run_module, story, name=NAME, report=str(page))
    assert not failed and result["changed"] and result["report_files"]["written"]
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and 'data-series="failed" data-final="27"' in text and 'href="rollout.csv"' in text
    with open(tmp_path / "rollout.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 40 and sum(row["state"] == "timed_out" for row in rows) == 22
    elsewhere = tmp_path / "csv"
    elsewhere.mkdir()
    result, failed = info(run_module, story, name=NAME, report=str(page), report_csv=str(elsewhere / "devices.csv"))
    assert not failed and (elsewhere / "devices.csv").exists() and 'href="csv/devices.csv"' in page.read_text()


def test_failures_before_anything_is_read_or_written(run_module, story, tmp_path):
    ledger = Ledger(story.where, read_only=True)
    where = ledger.where
    ledger.close()
    cases = [
        (dict(name="apn-2027"), "Campaign 'apn-2027': the ledger %s has no campaign of that name for api_url %s; its campaigns there are: %s"
         % (where, API, NAME)),
        (dict(name=NAME, api_url=LOCALHOST), "Campaign 'apn-2026-12': the ledger %s has no campaign of that name for api_url %s; a campaign of "
         "that name is recorded under %s. If that is the same service (localhost and 127.0.0.1, say), set api_url to it" % (where, LOCALHOST, API)),
        (dict(name=NAME, report=str(tmp_path / "r.csv")), "report_csv: %s is the report's own path; give the CSV another path, or leave report_csv "
         "out (%s)" % (tmp_path / "r.csv", tmp_path / "r.csv")),
        (dict(name=NAME, report=str(tmp_path / "nowhere" / "r.html")), "report: the directory %s does not exist; create it first (nothing was read "
         "or written)" % (tmp_path / "nowhere")),
        (dict(name=NAME, report=str(tmp_path / "r.html"), report_csv=str(tmp_path / "no" / "r.csv")), "report_csv: the directory %s does not "
         "exist; create it first (nothing was read or written)" % (tmp_path / "no")),
        (dict(states=["timed_out"]), "missing parameter(s) required by 'states': name"),
    ]
    for args, message in cases:
        result, failed = info(run_module, story, **args)
        assert failed and result["msg"] == message
    assert not list(tmp_path.glob("r.*"))
    result, failed = info(run_module, story, api_url=LOCALHOST)
    assert not failed and result["campaigns"] == [] and result["msg"] == "0 campaign(s) under %s" % LOCALHOST
    assert result["warnings"] == ["The ledger %s also holds campaigns under other API URLs (%s: 1); this task reads only those of %s. If that is "
                                  "the same service, set api_url to it" % (where, API, LOCALHOST)]


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_missing_ledger_fails_and_is_not_created(run_module, state_dir, tmp_path, request, store):
    if store == "sqlite":
        where = str(tmp_path / "none.sqlite3")
    else:
        server = request.getfixturevalue("postgresql")
        from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database

        where = Database(server.url(), server.password, server.new_schema())
    for args in ({}, {"name": NAME}):
        result, failed = run_module(vz_sms_campaign_info.main, **ledger_args(where), **args)
        assert failed and result["msg"].startswith("There is no ledger at ") and result["msg"].endswith(
            ", so no campaign was recorded there. Check ledger_path, ledger_url, ledger_schema and state_dir: vz_sms_campaign must use this ledger")
    if store == "sqlite":
        assert not (tmp_path / "none.sqlite3").exists()
    else:
        with server.connect() as db:
            assert db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (where.schema,)).fetchone() is None


def test_a_schema_4_ledger_has_no_campaign_and_is_not_migrated(run_module, where):
    """A ledger written before campaigns (schema 4, no campaign tables) is read as it is: no campaign, nothing created."""
    Ledger(where).close()
    if isinstance(where, str):
        db = sqlite3.connect(where)
        db.executescript("DROP TABLE campaign_counts; DROP TABLE campaign_devices; DROP TABLE campaigns; PRAGMA user_version = 4")
        db.close()
    else:
        import psycopg

        with psycopg.connect(where.url, password=where.password, autocommit=True) as db:
            db.execute('DROP TABLE "%s".campaign_counts; DROP TABLE "%s".campaign_devices; DROP TABLE "%s".campaigns; UPDATE "%s".schema_version '
                       'SET version = 4' % (where.schema, where.schema, where.schema, where.schema))
    result, failed = run_module(vz_sms_campaign_info.main, **ledger_args(where))
    assert not failed and result["campaigns"] == [] and result["warnings"] == []
    result, failed = run_module(vz_sms_campaign_info.main, **ledger_args(where), name=NAME)
    assert failed and result["msg"].endswith("has no campaign of that name for api_url %s; its campaigns there are: none" % API)
    ledger = Ledger(where, read_only=True)
    assert ledger.store.rows("SELECT count(*) FROM campaigns") == []  # still without the table
    ledger.close()
