"""thingspace.m2m.sms_history: main() runs as an asyncio task against the fake ThingSpace (fake_api.py) and is
cancelled at the end."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ansible_collections.thingspace.m2m.extensions.eda.plugins.event_source import sms_history

from fake_api import ACCOUNT, API, CREDENTIALS

pytestmark = pytest.mark.asyncio
MDN = "5550000001"


def queued(count, start=0):
    return [{"deviceIds": [{"kind": "iccid", "id": "89148000000800000001"}, {"kind": "mdn", "id": MDN}], "message": "m%d" % n,
             "timestamp": "2026-11-25T10:00:%02d-08:00" % (n % 60)} for n in range(start, start + count)]


@pytest.fixture
def args(state_dir):
    return dict(CREDENTIALS, api_url=API, account_name=ACCOUNT, interval=0.05, retries=0, state_dir=str(state_dir))


class Poller:
    def __init__(self, args, queue=None):
        self.args = args
        self.queue = queue or asyncio.Queue()

    async def __aenter__(self):
        self.task = asyncio.create_task(sms_history.main(self.queue, self.args))
        return self

    async def __aexit__(self, *exc):
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    async def events(self, count, timeout=5.0):
        """The next ``count`` events; fails when they do not come in time."""
        return [await asyncio.wait_for(self.queue.get(), timeout) for _n in range(count)]


async def test_every_block_is_read_in_order(fake, args, caplog):
    caplog.set_level(logging.INFO)
    fake.queue = queued(250)
    async with Poller(args) as poller:
        events = await poller.events(250)
        await asyncio.sleep(0.2)
        assert poller.queue.empty()
    assert [event["message"] for event in events] == ["m%d" % n for n in range(250)]
    assert {(event["type"], event["via"], event["account"], event["service"], event["request_id"]) for event in events} == {
        ("device_sms", "history", ACCOUNT, None, None)}
    assert events[0]["devices"] == [{"kind": "iccid", "id": "89148000000800000001"}, {"kind": "mdn", "id": MDN}]
    assert events[0]["sent_at"] == "2026-11-25T10:00:00-08:00" and "meta" not in events[0]
    assert fake.queue == [] and fake.history_tokens == {}
    assert "%s reading the SMS history of account %r from %s every 0.05 s (TLS off), recording in the ledger %s/ledger.sqlite3" % (
        sms_history.SOURCE, ACCOUNT, API, args["state_dir"]) in caplog.text


async def test_a_block_is_acknowledged_only_after_its_events_are_queued(fake, args):
    fake.queue = queued(150)
    async with Poller(args, asyncio.Queue(maxsize=1)) as poller:
        first = await poller.events(1)
        await asyncio.sleep(0.2)  # the source now waits to queue the second event of the first block
        assert fake.count("GET", "history") == 1 and len(fake.queue) == 150
        rest = await poller.events(149)
        await asyncio.sleep(0.2)
    assert [event["message"] for event in first + rest] == ["m%d" % n for n in range(150)]
    assert [call[1] for call in fake.calls if "history" in call[1]][:2] == ["/api/m2m/v1/sms/%s/history" % ACCOUNT] * 2
    assert fake.queue == []


async def test_an_empty_queue_is_read_again_after_the_interval(fake, args):
    async with Poller(args) as poller:
        for _tick in range(100):  # three reads take 0.1 s at the 0.05 s interval; a loaded machine gets 5 s
            if fake.count("GET", "history") >= 3:
                break
            await asyncio.sleep(0.05)
        assert poller.queue.empty() and fake.count("GET", "history") >= 3
        fake.queue = queued(2)
        events = await poller.events(2)
    assert [event["message"] for event in events] == ["m0", "m1"]


async def test_a_block_read_again_is_queued_once(fake, args):
    block = {"messages": queued(3), "hasMoreData": False}
    fake.script("GET", "history", (200, block, {}), (200, {"messages": [], "hasMoreData": False}, {}), (200, block, {}))
    fake.queue = queued(1, start=3)
    async with Poller(args) as poller:
        events = await poller.events(4)
        await asyncio.sleep(0.2)
        assert poller.queue.empty()
    assert [event["message"] for event in events] == ["m0", "m1", "m2", "m3"]


async def test_a_failed_next_read_starts_again_from_the_oldest_block_and_repeats_nothing(fake, args, caplog):
    fake.queue = queued(250)
    fake.script("GET", r"history", (200, {"messages": queued(100), "hasMoreData": True}, {"Location": "/sms/%s/history?next=999" % ACCOUNT}))
    async with Poller(args) as poller:
        events = await poller.events(250)
        await asyncio.sleep(0.2)
        assert poller.queue.empty()
    assert [event["message"] for event in events] == ["m%d" % n for n in range(250)]
    assert "HistoryToken.Invalid" in caplog.text and "reading the history of account %r again from its start" % ACCOUNT in caplog.text


async def test_a_server_failure_is_logged_and_read_again_after_the_interval(fake, args, caplog):
    fake.queue = queued(2)
    fake.script("GET", "history", (503, {"errorCode": "REQUEST_FAILED.UnexpectedError", "errorMessage": "down"}, {}))
    async with Poller(args) as poller:
        events = await poller.events(2)
    assert [event["message"] for event in events] == ["m0", "m1"]
    assert "HTTP 503" in caplog.text and "again in 0.05 s" in caplog.text


@pytest.mark.parametrize("change, message", [
    ({"account_name": "0000999999-00001"}, "REQUEST_FAILED.AccountNotFound"),
    ({"password": "not-the-password"}, "log in to ThingSpace as 'user': HTTP 400"),
])
async def test_a_refusal_of_the_first_read_stops_the_source(fake, args, change, message):
    with pytest.raises(SystemExit, match="^%s: .*%s" % (sms_history.SOURCE, message)) as caught:
        await sms_history.main(asyncio.Queue(), dict(args, **change))
    assert "five consecutive failed logins" in str(caught.value) or "password" not in change
    assert "\n" not in str(caught.value)
    assert fake.count("POST", "session/login") == 1


async def test_meta_hosts(fake, args):
    fake.queue = queued(1)
    async with Poller(dict(args, meta_hosts=["mdn"])) as poller:
        (event,) = await poller.events(1)
    assert event["meta"] == {"hosts": MDN}


@pytest.mark.parametrize("change, message", [
    ({"client_secret": None, "username": None}, r"missing credentials: an OAuth token needs client_id and client_secret \(env THINGSPACE_CLIENT_ID, "
                                                r"THINGSPACE_CLIENT_SECRET\) .*; a session token needs username and password"),
    ({"api_url": "http://192.0.2.1"}, "api_url 'http://192.0.2.1' is plain http to a host that is not loopback"),
    ({"api_url": "thingspace.verizon.com"}, "is not an http\\(s\\) URL"),
    ({"account_name": None}, "the argument account_name is required"),
    ({"interval": 0}, "interval and timeout must be more than 0"),
])
async def test_wrong_settings_stop_the_source_before_any_request(fake, args, change, message):
    with pytest.raises(SystemExit, match="^%s: .*%s" % (sms_history.SOURCE, message)):
        await sms_history.main(asyncio.Queue(), dict(args, **change))
    assert fake.calls == []


async def test_credentials_from_the_environment(fake, args, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    for name in CREDENTIALS:
        monkeypatch.setenv("THINGSPACE_" + name.upper(), CREDENTIALS[name])
    monkeypatch.setenv("THINGSPACE_API_URL", API)
    fake.queue = queued(1)
    async with Poller({"account_name": ACCOUNT, "interval": 0.05, "state_dir": args["state_dir"]}) as poller:
        (event,) = await poller.events(1)
    assert event["message"] == "m0"
    assert CREDENTIALS["client_secret"] not in caplog.text


async def test_a_message_read_again_after_a_restart_is_queued_once(fake, args):
    """The ledger (the default store) remembers what was queued, as the block comes again after a restart."""
    fake.queue = queued(3)
    async with Poller(args) as poller:
        first = await poller.events(3)
    fake.queue = queued(4)
    async with Poller(args) as poller:
        (fourth,) = await poller.events(1)
        await asyncio.sleep(0.2)
        assert poller.queue.empty()
    assert [event["message"] for event in [*first, fourth]] == ["m0", "m1", "m2", "m3"]
    fake.queue = queued(4)
    async with Poller(dict(args, store="memory")) as poller:
        assert len(await poller.events(4)) == 4  # memory forgets with the process
