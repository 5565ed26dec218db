"""thingspace.m2m.callbacks: main() runs as an asyncio task on a loopback port, callbacks are posted with aiohttp,
the task is cancelled at the end."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import logging
import re
import socket
import ssl
import threading
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from with_rulebook import free_port

from ansible_collections.thingspace.m2m.extensions.eda.plugins.event_source import callbacks
from ansible_collections.thingspace.m2m.plugins.module_utils import _event_source
from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database
from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import CallbackRecorder, MemoryRecorder, callback_event
from ansible_collections.thingspace.m2m.plugins.module_utils.callbacks import LISTENER_PORTS
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger

from callback_bodies import ACCOUNT, ICCID, LISTENER, MDN, SEED, delivery, device_sms, request_complete, sms_sent, without

pytestmark = pytest.mark.asyncio
ECS = "EnhancedConnectivityService"
SDC = "SMSDeliveryConfirmation"
WRONG_PASSWORD = "wrong-pw-91c2"


@pytest.fixture(autouse=True)
def ledger_dir(state_dir, monkeypatch):
    """The default ledger, where the source records callbacks, in the test's own state directory."""
    monkeypatch.setenv("THINGSPACE_STATE_DIR", str(state_dir))
    return state_dir


class Source:
    """The source as a task, and a client for it. ``events`` drains what it queued so far."""

    def __init__(self, args=None, recorder=None, scheme="http", client_ssl=None):
        self.port = (args or {}).get("port") or free_port()
        self.args = dict({"port": self.port, "check_port": False, **LISTENER}, **(args or {}))
        self.recorder = recorder
        self.base = "%s://127.0.0.1:%d" % (scheme, self.port)
        self.client_ssl = client_ssl
        self.queue = asyncio.Queue()

    async def __aenter__(self):
        if self.recorder is None:
            self.task = asyncio.create_task(callbacks.main(self.queue, self.args))
        else:
            self.task = asyncio.create_task(callbacks.serve(self.queue, callbacks._settings(self.args), lambda: self.recorder))
        for _attempt in range(200):
            if self.task.done():
                self.task.result()
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            break
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.client_ssl) if self.client_ssl else None)
        return self

    async def __aexit__(self, *exc):
        await self.session.close()
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    async def post(self, path, body=None, data=None, method="POST"):
        kwargs = {"data": data} if data is not None else {"json": body}
        async with self.session.request(method, self.base + path, **kwargs) as response:
            return response.status, await response.text()

    def events(self):
        found = []
        while not self.queue.empty():
            found.append(self.queue.get_nowait())
        return found


def path(service, account=ACCOUNT):
    return "/%s/%s" % (account, service)


@pytest.fixture(autouse=True)
def debug_logs(caplog, monkeypatch):
    """Every test logs at DEBUG and no test's log shows a listener password, the configured or a wrong one."""
    monkeypatch.delenv("THINGSPACE_CALLBACK_USERNAME", raising=False)
    monkeypatch.delenv("THINGSPACE_CALLBACK_PASSWORD", raising=False)
    caplog.set_level(logging.DEBUG)
    yield caplog
    for secret in (LISTENER["password"], WRONG_PASSWORD, "user's password"):
        assert secret not in caplog.text


def assert_no_credentials(events):
    text = json.dumps(events)
    assert LISTENER["password"] not in text and "password" not in text and "username" not in text


@pytest.mark.parametrize("name", sorted(SEED))
async def test_each_shape_of_the_vendor_is_answered_200_and_queued_once(name):
    service = SDC if name.startswith("sms_delivery") else ECS
    async with Source({"username": "user's login (callback registration)", "password": "user's password"}) as source:
        assert await source.post(path(service), SEED[name]) == (200, "")
        events = source.events()
    assert len(events) == 1 and events[0]["account"] == ACCOUNT and events[0]["service"] == service and "meta" not in events[0]
    assert_no_credentials(events)


async def test_a_send_s_callbacks_become_events_in_order():
    bodies = [(ECS, sms_sent()), (ECS, request_complete(devices=1)), (SDC, delivery("Undelivered")), (ECS, device_sms("YES"))]
    async with Source() as source:
        for service, body in bodies:
            assert (await source.post(path(service), body))[0] == 200
        events = source.events()
    assert [(event["type"], event["state"], event["message"]) for event in events] == [
        ("sms_sent", None, None), ("request_complete", None, None), ("sms_delivery", "Undelivered", None), ("device_sms", None, "YES")]
    assert events[0]["devices"][:3] == [{"kind": "iccid", "id": ICCID}, {"kind": "imei", "id": "351234560000013"}, {"kind": "mdn", "id": MDN}]
    assert_no_credentials(events)


async def test_a_path_prefix_and_an_account_from_the_url():
    async with Source({"path": "/thingspace/callbacks/"}) as source:
        assert (await source.post("/thingspace/callbacks/0000999999-00001/" + SDC, delivery()))[0] == 200
        assert (await source.post(path(SDC), delivery()))[0] == 404
        assert [event["account"] for event in source.events()] == ["0000999999-00001"]


@pytest.mark.parametrize("credentials", [
    {"username": LISTENER["username"], "password": WRONG_PASSWORD},
    {"username": "someone", "password": LISTENER["password"]},
    {"username": LISTENER["username"]},
    {"password": LISTENER["password"]},
    {},
    {"username": LISTENER["username"], "password": None},
    {"username": LISTENER["username"], "password": 7},
    {"username": LISTENER["username"], "password": LISTENER["password"] + " "},
], ids=["wrong password", "wrong username", "no password", "no username", "neither", "null", "number", "trailing space"])
async def test_wrong_or_missing_credentials_are_answered_401_and_queue_nothing(credentials, debug_logs):
    body = {name: value for name, value in delivery().items() if name not in ("username", "password")}
    async with Source() as source:
        assert await source.post(path(SDC), dict(body, **credentials)) == (401, "wrong or missing username or password\n")
        assert source.events() == []
        assert (await source.post(path(SDC), delivery()))[0] == 200
        assert len(source.events()) == 1
    assert "Refused a callback from 127.0.0.1 to /%s/%s: HTTP 401" % (ACCOUNT, SDC) in debug_logs.text


async def test_without_configured_credentials_any_are_taken_and_none_kept(monkeypatch):
    async with Source({"username": None, "password": None}) as source:
        assert (await source.post(path(SDC), delivery(username="", password="")))[0] == 200
        assert (await source.post(path(ECS), sms_sent(username="x", password=WRONG_PASSWORD)))[0] == 200
        events = source.events()
    assert len(events) == 2
    assert WRONG_PASSWORD not in json.dumps(events) and "password" not in json.dumps(events)


async def test_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("THINGSPACE_CALLBACK_USERNAME", LISTENER["username"])
    monkeypatch.setenv("THINGSPACE_CALLBACK_PASSWORD", LISTENER["password"])
    async with Source({"username": None, "password": None}) as source:
        assert (await source.post(path(SDC), delivery(username=LISTENER["username"], password=WRONG_PASSWORD)))[0] == 401
        assert (await source.post(path(SDC), delivery()))[0] == 200


def with_raw(body, name, raw):
    """``body`` as JSON bytes with the member ``name`` written as ``raw`` (JSON text json.dumps would not write)."""
    return json.dumps(dict(body, **{name: "@raw@"})).replace('"@raw@"', raw).encode()


@pytest.mark.parametrize("data, reason", [
    (b'{"requestId": "x", ', "the body is not JSON"),
    (b"\xff\xfe{}", "the body is not UTF-8"),
    (json.dumps(delivery()).encode("utf-16"), "the body is not UTF-8"),
    (json.dumps(delivery()).replace("Delivered", "Deliv\u00e9red").encode("latin-1"), "the body is not UTF-8"),
    (b"", "the body is not JSON"),
    (b"[1, 2]", "the body is not a JSON object"),
    (b'"text"', "the body is not a JSON object"),
    (b"null", "the body is not a JSON object"),
    # 40 KB of nested arrays made Python's JSON parser raise RecursionError: a 500 with a traceback, before the credentials.
    (b"[" * 20000 + b"]" * 20000, "the body nests more than 16 levels"),
    (b'{"a": ' * 5000 + b"1" + b"}" * 5000, "the body nests more than 16 levels"),
    (with_raw(delivery(), "extra", "[" * 16 + "]" * 16), "the body nests more than 16 levels"),
    (with_raw(delivery(), "callbackCount", "NaN"), "the body is not JSON (NaN is no JSON value)"),
    (with_raw(delivery(), "extra", "-Infinity"), "the body is not JSON (-Infinity is no JSON value)"),
    (with_raw(delivery(), "extra", "1" * 5000), "the body is not JSON"),
    (json.dumps(delivery()).replace('{"username"', '{"password": "%s", "username"' % WRONG_PASSWORD, 1).encode(),
     "the body has a key twice in one object"),
    (with_raw(delivery(), "password", '"\\ud800"'), "the body has a NUL character or a lone surrogate in a string"),
    (with_raw(device_sms(), "requestId", '"a\\u0000b"'), "the body has a NUL character or a lone surrogate in a string"),
    (json.dumps(delivery())[:-1].encode() + b', "\\udfff": 1}', "the body has a NUL character or a lone surrogate in a string"),
], ids=["truncated", "UTF-16 BOM", "UTF-16", "Latin-1", "empty", "array", "string", "null", "20000 arrays", "5000 objects", "17 levels", "NaN",
        "-Infinity", "5000 digits", "key twice", "lone surrogate", "NUL", "surrogate key"])
async def test_a_body_that_is_not_a_json_object_is_answered_400(data, reason, debug_logs):
    async with Source() as source:
        assert await source.post(path(SDC), data=data) == (400, reason + "\n")
        assert (await source.post(path(SDC), delivery()))[0] == 200
        assert len(source.events()) == 1
    (refusal,) = [record for record in debug_logs.records if "Refused" in record.getMessage()]
    assert reason in refusal.getMessage() and "\n" not in refusal.getMessage() and refusal.exc_info is None


async def test_a_body_with_escapes_of_storable_characters_is_taken():
    """A \\u escape makes read_body look at every string; what it spells is taken as any other character."""
    async with Source() as source:
        assert (await source.post(path(ECS), data=json.dumps(device_sms("caf\u00e9 \U0001f600"), ensure_ascii=True).encode()))[0] == 200
        (event,) = source.events()
    assert event["message"] == "caf\u00e9 \U0001f600"


async def test_a_body_of_16_levels_is_taken():
    async with Source() as source:
        assert (await source.post(path(SDC), data=with_raw(delivery(), "extra", "[" * 15 + "]" * 15)))[0] == 200
        assert len(source.events()) == 1


async def test_an_account_that_cannot_be_stored_is_answered_400():
    async with Source() as source:
        assert await source.post("/0000%00123456/" + SDC, delivery()) == (400, "the account in the URL has a NUL character or a lone surrogate\n")
        assert source.events() == []


async def raw_exchange(port, data):
    """The status line the source answers to the bytes ``data`` sent as they are."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    status = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return status.decode().strip()


@pytest.mark.parametrize("request_head, reason", [
    (b"POST /%s/%s HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\nContent-Length: 2\r\n\r\n{}" % (ACCOUNT.encode(), SDC.encode()), "Invalid header"),
    (b"POST /%s/%s HTTP/1.1\r\nHost: x\r\nX-Long: %s\r\n\r\n" % (ACCOUNT.encode(), SDC.encode(), b"a" * 9000), "Got more than"),
    (b"POST /%s/%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n" % (ACCOUNT.encode(), SDC.encode()),
     "chunk"),
    (b"POST /%s/%s HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope" % (ACCOUNT.encode(), SDC.encode()),
     "content-encoding: gzip"),
], ids=["header name", "header length", "chunk size", "gzip"])
async def test_a_malformed_request_is_answered_400_on_one_log_line(request_head, reason, debug_logs):
    async with Source() as source:
        assert re.match(r"HTTP/1\.[01] 400 ", await raw_exchange(source.port, request_head))
        assert (await source.post(path(SDC), delivery()))[0] == 200
        assert len(source.events()) == 1
    refusals = [record for record in debug_logs.records if record.levelno >= logging.WARNING]
    assert len(refusals) == 1 and refusals[0].exc_info is None and "\n" not in refusals[0].getMessage(), [r.getMessage() for r in refusals]
    assert "Refused a " in refusals[0].getMessage() and "HTTP 400" in refusals[0].getMessage() and reason.lower() in refusals[0].getMessage().lower()


async def test_unknown_services_and_shapes_are_answered_400_and_the_source_keeps_serving(debug_logs):
    async with Source() as source:
        status, text = await source.post(path("DeviceUsage"), delivery())
        assert (status, text) == (400, "'DeviceUsage' is not a callback service this source takes; it takes %s, %s\n" % (ECS, SDC))
        assert (await source.post(path(ECS), delivery()))[0] == 400
        assert await source.post(path(SDC), delivery("Pending")) == (
            400, "the body is not a valid sms_delivery callback (deviceResponse.smsDeliveryResponse.confirmation: "
                 "Input should be 'Delivered', 'Undelivered', 'Expired' or 'Rejected')\n")
        assert (await source.post(path(SDC), {**LISTENER, "hello": "world"}))[0] == 400
        assert source.events() == []
        assert (await source.post(path(SDC), delivery()))[0] == 200
        assert len(source.events()) == 1
    assert debug_logs.text.count("HTTP 400") == 4


async def test_a_refusal_is_logged_on_one_line(debug_logs):
    async with Source() as source:
        assert (await source.post("/%s%%0AForged%%20line/DeviceUsage" % ACCOUNT, delivery()))[0] == 400
    (refusal,) = [record.getMessage() for record in debug_logs.records if "Refused" in record.getMessage()]
    assert "\n" not in refusal and "/%s%%0AForged%%20line/DeviceUsage" % ACCOUNT in refusal


async def test_wrong_paths_and_methods_are_refused_on_one_log_line(debug_logs):
    async with Source({"path": "/thingspace"}) as source:
        assert await source.post("/thingspace/" + SDC, delivery()) == (404, "not a callback URL: callbacks go to /thingspace/<account>/<service>\n")
        assert (await source.post("/thingspace" + path(SDC) + "/more", delivery()))[0] == 404
        assert (await source.post(path(SDC), delivery()))[0] == 404
        assert await source.post("/thingspace" + path(SDC), method="GET") == (405, "callbacks are posted, not sent with GET\n")
        async with source.session.put(source.base + "/thingspace" + path(SDC)) as response:
            assert response.status == 405 and response.headers["Allow"] == "POST"
        assert source.events() == []
    refusals = [record.getMessage() for record in debug_logs.records if record.levelno == logging.WARNING]
    assert refusals == [
        "Refused a callback from 127.0.0.1 to /thingspace/%s: HTTP 404, not a callback URL: callbacks go to /thingspace/<account>/<service>" % SDC,
        "Refused a callback from 127.0.0.1 to /thingspace%s/more: HTTP 404, not a callback URL: callbacks go to /thingspace/<account>/<service>"
        % path(SDC),
        "Refused a callback from 127.0.0.1 to %s: HTTP 404, not a callback URL: callbacks go to /thingspace/<account>/<service>" % path(SDC),
        "Refused a callback from 127.0.0.1 to /thingspace%s: HTTP 405, callbacks are posted, not sent with GET" % path(SDC),
        "Refused a callback from 127.0.0.1 to /thingspace%s: HTTP 405, callbacks are posted, not sent with PUT" % path(SDC)]


async def test_a_body_over_max_body_size_is_answered_413():
    body = delivery()
    size = len(json.dumps(body).encode())
    async with Source({"max_body_size": size}) as source:
        assert (await source.post(path(SDC), data=json.dumps(body).encode()))[0] == 200
        padded = json.dumps(dict(body, padding="")).encode()
        assert await source.post(path(SDC), data=padded) == (413, "the body is over max_body_size (%d bytes)\n" % size)
        assert (await source.post(path(SDC), data=b"x" * (10 * size)))[0] == 413
        assert len(source.events()) == 1


async def test_repeats_are_answered_200_and_queued_once():
    async with Source() as source:
        for attempt in (1, 2, 3, 4):
            assert await source.post(path(ECS), sms_sent(count=attempt)) == (200, "")
        for _attempt in (1, 2):
            assert (await source.post(path(SDC), delivery("Delivered")))[0] == 200
            assert (await source.post(path(ECS), request_complete()))[0] == 200
            assert (await source.post(path(ECS, "0000123456-00002"), request_complete()))[0] == 200
            assert (await source.post(path(ECS), device_sms("YES", request_id="resent-%d" % _attempt)))[0] == 200
        assert (await source.post(path(SDC), delivery("Expired")))[0] == 200
        events = source.events()
    assert [(event["type"], event["account"][-5:], event["state"]) for event in events] == [
        ("sms_sent", "00001", None), ("sms_delivery", "00001", "Delivered"), ("request_complete", "00001", None),
        ("request_complete", "00002", None), ("device_sms", "00001", None), ("sms_delivery", "00001", "Expired")]


async def test_the_dedupe_window_bounds_what_is_remembered():
    async with Source({"store": "memory", "dedupe_window": 1}) as source:
        for state in ("Delivered", "Delivered", "Expired", "Delivered"):
            assert (await source.post(path(SDC), delivery(state)))[0] == 200
        assert [event["state"] for event in source.events()] == ["Delivered", "Expired", "Delivered"]


async def test_meta_hosts_names_the_device_by_the_first_kind_it_has():
    async with Source({"meta_hosts": ["iccid", "MDN"]}) as source:
        for service, body in ((ECS, sms_sent()), (SDC, delivery()), (ECS, request_complete())):
            assert (await source.post(path(service), body))[0] == 200
        events = source.events()
    assert [event.get("meta") for event in events] == [{"hosts": ICCID}, {"hosts": MDN}, None]
    assert [event["type"] for event in events] == ["sms_sent", "sms_delivery", "request_complete"] and events[1]["state"] == "Delivered"


async def test_the_log_tells_a_queued_callback_from_a_repeat(debug_logs):
    async with Source() as source:
        for _attempt in range(2):
            assert (await source.post(path(SDC), delivery()))[0] == 200
        (event,) = source.events()
    said = [record.getMessage() for record in debug_logs.records if "sms_delivery callback" in record.getMessage()]
    assert said == ["%s sms_delivery callback %s of request %s" % (word, event["event_id"], event["request_id"]) for word in ("Queued", "Repeated")]


class BlockingRecorder(MemoryRecorder):
    """Records only once ``release`` is set, and counts the calls."""

    def __init__(self):
        super().__init__(100)
        self.release = threading.Event()
        self.started = threading.Event()

    def record(self, events, queued=()):
        self.started.set()
        assert self.release.wait(10)
        return super().record(events, queued)


async def test_the_answer_comes_only_after_the_callback_is_recorded():
    recorder = BlockingRecorder()
    async with Source(recorder=recorder) as source:
        post = asyncio.create_task(source.post(path(SDC), delivery()))
        assert await asyncio.to_thread(recorder.started.wait, 10)
        await asyncio.sleep(0.2)
        assert not post.done() and source.events() == []
        recorder.release.set()
        assert await post == (200, "")
        assert len(source.events()) == 1


class CallsRecorder(MemoryRecorder):
    """Remembers each call: (the identities recorded, the identities marked queued)."""

    def __init__(self):
        super().__init__(100)
        self.calls = []

    def record(self, events, queued=()):
        self.calls.append(([event["event_id"] for event in events], list(queued)))
        return super().record(events, queued)


async def test_the_queued_marks_ride_with_the_next_callback_and_come_alone_when_none_does(monkeypatch):
    """One recorder call (a transaction) per callback under load, not two; and without another callback the marks
    still come within MARK_DELAY, so another instance on the ledger soon sees the callback queued."""
    monkeypatch.setattr(_event_source, "MARK_DELAY", 0.5)
    recorder = CallsRecorder()
    async with Source(recorder=recorder) as source:
        assert (await source.post(path(SDC), delivery()))[0] == 200
        assert (await source.post(path(SDC), delivery("Expired")))[0] == 200
        first, second = [event["event_id"] for event in source.events()]
        assert recorder.calls == [([first], []), ([second], [first])]
        await asyncio.sleep(1)
        assert recorder.calls[2:] == [([], [second])]


class FlakyRecorder(CallbackRecorder):
    """Fails the first ``failures`` calls, as a store that is down would; remembers what it recorded."""

    def __init__(self, failures):
        self.failures = failures
        self.recorded = []
        self.closed = False

    def record(self, events, queued=()):
        if self.failures:
            self.failures -= 1
            raise OSError("the store is down")
        found = []
        for event in events:
            found.append(event["event_id"] not in self.recorded)
            self.recorded.append(event["event_id"])
        return found

    def close(self):
        self.closed = True


async def test_a_callback_the_recorder_refuses_is_answered_503_and_queued_when_sent_again(debug_logs):
    recorder = FlakyRecorder(failures=1)
    async with Source(recorder=recorder) as source:
        assert await source.post(path(SDC), delivery()) == (503, "not recorded\n")
        assert source.events() == []
        assert await source.post(path(SDC), delivery()) == (200, "")
        assert await source.post(path(SDC), delivery()) == (200, "")
        assert len(source.events()) == 1
    assert recorder.closed and len(recorder.recorded) == 2
    assert "Could not record a sms_delivery callback of request" in debug_logs.text and "OSError: the store is down" in debug_logs.text


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (certfile, keyfile)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory = tmp_path_factory.mktemp("tls")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(certfile), str(keyfile)


async def test_the_start_line_names_address_port_path_tls_and_store(ledger_dir, debug_logs):
    async with Source({"path": "/thingspace/"}) as source:
        pass
    async with Source({"store": "memory", "username": None, "password": None}) as memory:
        pass
    said = [record.getMessage() for record in debug_logs.records if " listening on " in record.getMessage()]
    assert said == [
        "%s listening on address 127.0.0.1, port %d, path /thingspace/<account>/<service>, TLS off, recording in the ledger %s"
        % (callbacks.SOURCE, source.port, ledger_dir / "ledger.sqlite3"),
        "%s listening on address 127.0.0.1, port %d, path /<account>/<service>, TLS off, recording in memory (the last 100000 identities) "
        "(no username and password set: any client that reaches it is taken)" % (callbacks.SOURCE, memory.port)]


async def test_tls(certificate, debug_logs):
    certfile, keyfile = certificate
    trusting = ssl.create_default_context(cafile=certfile)
    async with Source({"certfile": certfile, "keyfile": keyfile}, scheme="https", client_ssl=trusting) as source:
        assert "port %d, path /<account>/<service>, TLS on, recording in" % source.port in debug_logs.text
        assert (await source.post(path(SDC), delivery()))[0] == 200
        assert len(source.events()) == 1
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(aiohttp.ClientError):
                await plain.post("http://127.0.0.1:%d%s" % (source.port, path(SDC)), json=delivery())
        async with aiohttp.ClientSession() as untrusting:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await untrusting.post(source.base + path(SDC), json=delivery())
        assert source.events() == []


async def test_a_certificate_with_its_key_in_one_file(certificate, tmp_path):
    certfile, keyfile = certificate
    both = tmp_path / "both.pem"
    both.write_bytes(Path(certfile).read_bytes() + Path(keyfile).read_bytes())
    async with Source({"certfile": str(both)}, scheme="https", client_ssl=ssl.create_default_context(cafile=certfile)) as source:
        assert (await source.post(path(SDC), delivery()))[0] == 200


async def test_the_allow_list(debug_logs):
    async with Source({"allowed_networks": ["192.0.2.0/24", "10.0.0.1"]}) as source:
        assert await source.post(path(SDC), delivery()) == (403, "the client address is not in allowed_networks\n")
        assert await source.post("/nowhere", delivery()) == (403, "the client address is not in allowed_networks\n")
    async with Source({"allowed_networks": "192.0.2.0/24, 127.0.0.0/8"}) as source:
        assert (await source.post(path(SDC), delivery()))[0] == 200
        assert len(source.events()) == 1
    assert "Refused a callback from 127.0.0.1 to /%s/%s: HTTP 403" % (ACCOUNT, SDC) in debug_logs.text


async def test_a_port_thingspace_does_not_accept_is_refused_unless_told_otherwise():
    port = free_port()
    assert port not in LISTENER_PORTS
    with pytest.raises(SystemExit, match="ThingSpace accepts listener URLs only on the ports 80, 443, 9001-9006, 50551-50559 and 28200-28220, "
                                         "not %d; behind a reverse proxy that listens on one of them, set check_port: false" % port):
        await callbacks.main(asyncio.Queue(), {"port": port})
    async with Source({"port": port, "check_port": "false"}) as source:
        assert (await source.post(path(SDC), delivery()))[0] == 200


async def test_a_port_thingspace_accepts_is_taken():
    port = free_port(sorted(port for port in LISTENER_PORTS if port > 1024))
    if port is None:
        pytest.skip("every unprivileged port ThingSpace accepts is in use on this machine")
    async with Source({"port": port, "check_port": True}) as source:
        assert (await source.post(path(SDC), delivery()))[0] == 200


@pytest.mark.parametrize("args, message", [
    ({"host": "0.0.0.0"}, "plain HTTP on 0.0.0.0, which is not loopback"),
    ({"host": "192.0.2.10"}, "plain HTTP on 192.0.2.10, which is not loopback"),
    ({"username": "listener", "password": None}, "set both username and password"),
    ({"keyfile": "/k.pem"}, "keyfile needs certfile"),
    ({"port": 70000}, "port 70000 is not a TCP port"),
    ({"allowed_networks": ["10.0.0.0/33"]}, "allowed_networks: '10.0.0.0/33' does not appear to be an IPv4 or IPv6 network"),
    ({"path": "/a/{account}"}, "must not contain braces"),
    ({"max_body_size": 0}, "max_body_size must be 1 or more bytes"),
    ({"dedupe_window": 0}, "dedupe_window must be 1 or more"),
    ({"store": "redis"}, "store must be ledger or memory, not 'redis'"),
    ({"ledger_url": "mysql://db/x"}, "ledger_url: the scheme 'mysql' is not a PostgreSQL URL"),
    ({"ledger_url": "postgresql://db/x", "ledger_schema": "Bad-Name"}, "ledger_schema: 'Bad-Name' is not a schema name"),
    ({"prot": 9001}, "unknown argument(s) prot"),
])
async def test_wrong_settings_stop_the_source_before_it_listens(args, message):
    settings = dict({"port": 9001, "check_port": False, **LISTENER}, **args)
    with pytest.raises(SystemExit) as caught:
        await callbacks.main(asyncio.Queue(), settings)
    assert str(caught.value).startswith("%s: " % callbacks.SOURCE) and message in str(caught.value) and "\n" not in str(caught.value)


async def test_a_postgresql_ledger_without_psycopg_stops_the_source_before_it_listens(monkeypatch):
    from ansible_collections.thingspace.m2m.plugins.module_utils import _event_source

    monkeypatch.setattr(_event_source, "find_spec", lambda name: None)
    with pytest.raises(SystemExit) as caught:
        await callbacks.main(asyncio.Queue(), dict({"port": 9001, "check_port": False, "ledger_url": "postgresql://db/x"}, **LISTENER))
    assert str(caught.value) == "%s: ledger_url needs the Python library psycopg (pip install psycopg)" % callbacks.SOURCE


async def test_plain_http_on_an_address_that_is_not_loopback_is_an_explicit_choice():
    settings = callbacks._settings({"host": "0.0.0.0", "port": 9001, "allow_insecure_http": True})
    assert (settings["host"], settings["allow_insecure_http"], settings["path"]) == ("0.0.0.0", True, "")
    assert callbacks._settings({"host": "::1", "port": 9001})["host"] == "::1"
    assert callbacks._settings({"host": "localhost", "port": 9001})["host"] == "localhost"


async def test_cancelling_stops_listening_and_closes_the_recorder():
    recorder = FlakyRecorder(failures=0)
    async with Source(recorder=recorder) as source:
        assert (await source.post(path(SDC), delivery()))[0] == 200
    assert recorder.closed
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", source.port)


async def test_the_ledger_finds_a_repeat_after_the_source_restarted(ledger_dir):
    async with Source() as source:
        assert (await source.post(path(SDC), delivery()))[0] == 200
        assert len(source.events()) == 1
    async with Source() as source:
        assert await source.post(path(SDC), delivery()) == (200, "")
        assert await source.post(path(SDC), delivery("Expired")) == (200, "")
        assert [event["state"] for event in source.events()] == ["Expired"]
    rows = Ledger(str(ledger_dir / "ledger.sqlite3")).store.rows("SELECT type, queued_at IS NOT NULL FROM callbacks")
    assert rows == [("sms_delivery", True), ("sms_delivery", True)]


async def test_a_callback_recorded_but_never_queued_is_queued_when_sent_again(ledger_dir):
    """As when the source died between the commit and the queue: ThingSpace got no 2xx and sends it again."""
    event = callback_event(SDC, ACCOUNT, without(delivery(), "username", "password"))
    recorder = StoreRecorder(str(ledger_dir / "ledger.sqlite3"))
    assert recorder.record([event]) == [True]
    recorder.close()
    async with Source() as source:
        assert await source.post(path(SDC), delivery()) == (200, "")
        assert await source.post(path(SDC), delivery()) == (200, "")
        assert [queued["event_id"] for queued in source.events()] == [event["event_id"]]


async def test_a_callback_another_live_instance_holds_unqueued_is_answered_503_until_it_is_gone(ledger_dir, monkeypatch, debug_logs):
    """The other instance recorded it and neither queued it nor died (a stuck rulebook queue): this one waits
    IN_FLIGHT_WAIT, answers 503 and queues nothing; once that instance is gone, ThingSpace's next attempt is queued."""
    monkeypatch.setattr(_event_source, "IN_FLIGHT_WAIT", 0.3)
    event = callback_event(SDC, ACCOUNT, without(delivery(), "username", "password"))
    other = StoreRecorder(str(ledger_dir / "ledger.sqlite3"))
    assert other.record([event]) == [True]
    async with Source() as source:
        assert await source.post(path(SDC), delivery()) == (503, "not recorded\n")
        assert source.events() == []
        other.close()
        assert await source.post(path(SDC), delivery()) == (200, "")
        assert [queued["event_id"] for queued in source.events()] == [event["event_id"]]
    assert "WARNING" in debug_logs.text and "InFlight: another instance of the source recorded it" in debug_logs.text


async def test_callbacks_posted_together_are_each_recorded_and_queued_once(ledger_dir):
    bodies = [(SDC, delivery(mdn="555020%04d" % n)) for n in range(40)] + [(ECS, sms_sent())]
    async with Source() as source:
        answers = await asyncio.gather(*(source.post(path(service), body) for service, body in bodies + bodies))
        events = source.events()
    assert {status for status, _text in answers} == {200} and len(events) == len(bodies)
    assert len({event["event_id"] for event in events}) == len(bodies)
    ledger = Ledger(str(ledger_dir / "ledger.sqlite3"))
    assert ledger.store.rows("SELECT count(*), count(queued_at) FROM callbacks") == [(41, 41)]
    assert ledger.store.rows("SELECT count(*) FROM deliveries") == [(41,)]


async def test_the_source_records_into_a_postgresql_ledger(postgresql, caplog):
    schema = postgresql.new_schema()
    args = {"ledger_url": postgresql.url(), "ledger_password": postgresql.password, "ledger_schema": schema}
    for _restart in range(2):
        async with Source(args) as source:
            assert (await source.post(path(SDC), delivery("Rejected")))[0] == 200
            assert (await source.post(path(ECS), sms_sent()))[0] == 200
            events = source.events()
    assert events == []  # the second source found both in the database
    assert "TLS off, recording in the ledger postgres@127.0.0.1:%d/postgres (schema %s)" % (postgresql.port, schema) in caplog.text
    assert postgresql.password not in caplog.text
    assert postgresql.execute('SELECT device, state FROM "%s".deliveries' % schema) == [("mdn:%s" % MDN, "Rejected")]


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_two_instances_on_one_ledger_record_and_queue_each_callback_once_whichever_gets_the_retry(backend, request, tmp_path):
    """Two activations behind one load balancer: ThingSpace's retry of a callback reaches the other instance after the
    first answered (its answer lost on the way), or while the first attempt is still being recorded."""
    if backend == "postgresql":
        server = request.getfixturevalue("postgresql")
        args = {"ledger_url": server.url(), "ledger_password": server.password, "ledger_schema": server.new_schema()}
    else:
        args = {"ledger_path": str(tmp_path / "shared" / "ledger.sqlite3")}
    after = [(SDC, delivery(mdn="555030%04d" % n)) for n in range(20)]
    racing = [(SDC, delivery("Undelivered", mdn="555040%04d" % n)) for n in range(20)] + [(ECS, device_sms("reply %d" % n)) for n in range(20)]
    async with Source(args) as first, Source(args) as second:
        answers = []
        for number, (service, body) in enumerate(after):
            one, other = (first, second) if number % 2 else (second, first)
            answers.append(await one.post(path(service), body))
            answers.append(await other.post(path(service), body))
        answers.extend(await asyncio.gather(*(instance.post(path(service), body) for service, body in racing for instance in (first, second))))
        events = first.events() + second.events()
    assert answers == [(200, "")] * 2 * len(after + racing)
    expected = sorted(callback_event(service, ACCOUNT, without(body, "username", "password"))["event_id"] for service, body in after + racing)
    assert sorted(event["event_id"] for event in events) == expected
    ledger = Ledger(args.get("ledger_path") or Database(args["ledger_url"], args["ledger_password"], args["ledger_schema"]))
    try:
        assert ledger.store.rows("SELECT count(*), count(queued_at) FROM callbacks") == [(len(expected), len(expected))]
    finally:
        ledger.close()


async def test_a_store_that_cannot_be_opened_stops_the_source_before_it_listens(ledger_dir):
    ledger_dir.mkdir(mode=0o700)
    (ledger_dir / "ledger.sqlite3").write_bytes(b"")
    (ledger_dir / "ledger.sqlite3").chmod(0o600)
    with pytest.raises(SystemExit, match="^%s: .*is empty" % callbacks.SOURCE):
        await callbacks.main(asyncio.Queue(), Source().args)


async def test_a_port_in_use_or_a_certificate_that_cannot_be_read_stops_the_source_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit, match="^%s: .*address already in use" % callbacks.SOURCE):
            await callbacks.main(asyncio.Queue(), Source({"port": taken.getsockname()[1]}).args)
    with pytest.raises(SystemExit, match="^%s: .*No such file or directory" % callbacks.SOURCE) as caught:
        await callbacks.main(asyncio.Queue(), Source({"certfile": str(tmp_path / "missing.pem")}).args)
    assert "\n" not in str(caught.value)
