"""thingspace.m2m.callbacks under generated input (Hypothesis): the real source (its main() on a loopback port, recording
into the SQLite ledger) gets junk bodies, paths, methods, headers and malformed requests between valid callbacks.

Whatever comes, no answer is a 5xx, every valid callback is answered 200 and recorded and queued exactly once, and
nothing of the junk is recorded or queued. With CI set the examples are the same on every run (the "ci" profile of
tests/unit/conftest.py)."""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import socket
import threading
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.thingspace.m2m.extensions.eda.plugins.event_source import callbacks
from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import callback_event
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger

from callback_bodies import ACCOUNT, LISTENER, SEED, delivery, device_sms, request_complete, sms_sent, without

ECS, SDC = "EnhancedConnectivityService", "SMSDeliveryConfirmation"
# About 10 s on a shared 2-core machine; every example is up to 6 requests.
EXAMPLES = 200
ANSWER_TIMEOUT = 10
# The fields without which each type is no callback (device_sms has no required requestId).
REQUIRED = {"sms_sent": ("requestId", "deviceIds", "status"), "request_complete": ("requestId", "summary"),
            "sms_delivery": ("requestId", "deviceIds", "deviceResponse"), "device_sms": ("deviceIds", "deviceResponse")}
SERVICE = {"sms_sent": ECS, "request_complete": ECS, "device_sms": ECS, "sms_delivery": SDC}
_serial = itertools.count(1)


class RunningSource:
    """callbacks.main() in an event loop of its own thread, so that the (synchronous) Hypothesis test can post to it."""

    def __init__(self, state_dir):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.ledger = state_dir / "ledger.sqlite3"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        args = {"port": self.port, "check_port": False, "state_dir": str(state_dir), "max_body_size": 65536, **LISTENER}
        self.queue, self.task = self.run(self._start(args))
        for _attempt in range(200):
            assert not self.task.done(), "the source stopped: %r" % (self.task.exception(),)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                threading.Event().wait(0.02)

    def run(self, coroutine):
        """What ``coroutine`` returns, run in the source's event loop."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(ANSWER_TIMEOUT)

    @staticmethod
    async def _start(args):
        queue = asyncio.Queue()
        return queue, asyncio.ensure_future(callbacks.main(queue, args))

    async def _stop(self):
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    def events(self):
        async def drain():
            return [self.queue.get_nowait() for _event in range(self.queue.qsize())]

        return self.run(drain())

    def stop(self):
        """Cancel the source and wait until it has stopped (and closed its recorder)."""
        if self.thread.is_alive():
            self.run(self._stop())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(ANSWER_TIMEOUT)

    def post(self, path, data, headers=(), method="POST"):
        """The status of a request through http.client."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=ANSWER_TIMEOUT)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(data)))
            connection.endheaders(data)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def raw(self, data):
        """The status of a request sent as the bytes ``data``, or None when the source closes without answering."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=ANSWER_TIMEOUT) as connection:
            connection.sendall(data)
            connection.shutdown(socket.SHUT_WR)
            line = connection.makefile("rb").readline()
        return int(line.split()[1]) if line.startswith(b"HTTP/") else None


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    running = RunningSource(tmp_path_factory.mktemp("state"))
    yield running
    running.stop()


def valid_bodies():
    """A new valid callback each time: (type, body), of every type, the seed's shapes among them."""
    def new(kind, variant):
        serial = next(_serial)
        if kind == "device_sms":  # the seed has no device SMS example
            return kind, device_sms("message %d" % serial)
        if variant == "seed":
            body = dict(SEED["sms_delivery_Delivered" if kind == "sms_delivery" else kind], **LISTENER)
        else:
            body = {"sms_sent": lambda: sms_sent(count=serial % 4 + 1), "request_complete": lambda: request_complete(devices=serial % 50),
                    "sms_delivery": lambda: delivery(mdn="555%07d" % serial)}[kind]()
        return kind, dict(body, requestId="fuzz-%08d" % serial)

    return st.builds(new, st.sampled_from(sorted(REQUIRED)), st.sampled_from(["seed", "fleet"]))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
header_tokens = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"), min_size=1, max_size=12)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40)
extra_headers = st.lists(st.tuples(header_tokens.map(lambda name: "X-" + name), header_values), max_size=4)
content_types = st.sampled_from([None, "application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", "application/octet-stream", ""])


def headers_of(content_type, extra):
    return ([("Content-Type", content_type)] if content_type is not None else []) + list(extra)


def corrupt(kind, body, how, draw):
    """(service, bytes) of ``body`` broken so that it is certainly no callback."""
    service = SERVICE[kind]
    text = json.dumps(body)
    if how == "drop":
        return service, json.dumps(without(body, draw(st.sampled_from(REQUIRED[kind])))).encode()
    if how == "retype":
        name = draw(st.sampled_from(REQUIRED[kind]))
        return service, json.dumps(dict(body, **{name: draw(st.sampled_from([[], {}, True, 7, None, [1], {"id": 1}]))})).encode()
    if how == "nest":
        depth = draw(st.integers(16, 3000))
        return service, json.dumps(dict(body, extra="@")).replace('"@"', "[" * depth + "]" * depth).encode()
    if how == "constant":
        return service, json.dumps(dict(body, extra="@")).replace('"@"', draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))).encode()
    if how == "unstorable":
        return service, text.replace('"requestId": "', '"requestId": "%s' % draw(st.sampled_from(["\\u0000", "\\ud800", "\\udfff"])), 1).encode()
    if how == "twice":
        return service, text.replace("{", '{"requestId": "other", ', 1).encode()
    if how == "truncate":
        return service, text.encode()[:draw(st.integers(0, len(text) - 1))]
    if how == "encoding":
        return service, (text[:-1] + ', "note": "d\u00e9j\u00e0"}').encode(draw(st.sampled_from(["utf-16", "utf-32", "latin-1"])))
    if how == "wrong service":
        return {ECS: SDC, SDC: ECS}[service] if kind != "device_sms" else SDC, text.encode()
    if how == "wrong password":
        return service, json.dumps(dict(body, password=draw(st.text(max_size=20).filter(lambda p: p != LISTENER["password"])))).encode()
    if how == "no credentials":
        return service, json.dumps(without(body, draw(st.sampled_from(["username", "password"])))).encode()
    raise AssertionError(how)


@st.composite
def junk(draw):
    """(kind of junk, how to send it): a request that is no callback, and must be answered 4xx (or not at all)."""
    what = draw(st.sampled_from(["corrupt", "json", "bytes", "big", "path", "method", "raw"]))
    path = "/%s/%s" % (ACCOUNT, draw(st.sampled_from([ECS, SDC])))
    if what == "corrupt":
        kind, body = draw(valid_bodies())
        how = draw(st.sampled_from(["drop", "retype", "nest", "constant", "unstorable", "twice", "truncate", "encoding", "wrong service",
                                    "wrong password", "no credentials"]))
        service, data = corrupt(kind, body, how, draw)
        return how, ("post", "/%s/%s" % (ACCOUNT, service), data, draw(content_types), draw(extra_headers), "POST")
    if what == "json":
        value = draw(json_values)
        if isinstance(value, dict):  # any object: with credentials that are not the source's
            value.update(username=LISTENER["username"], password=draw(st.text(max_size=12).filter(lambda p: p != LISTENER["password"])))
        return what, ("post", path, json.dumps(value).encode(), draw(content_types), draw(extra_headers), "POST")
    if what == "bytes":
        return what, ("post", path, draw(st.binary(max_size=300)), draw(content_types), draw(extra_headers), "POST")
    if what == "big":
        return what, ("post", path, b'{"a": "' + b"x" * draw(st.integers(65536, 200000)) + b'"}', "application/json", [], "POST")
    if what == "path":
        segments = draw(st.lists(st.text(max_size=12), min_size=0, max_size=4))
        return what, ("post", "/" + "/".join(quote(segment, safe="") for segment in segments), json.dumps(delivery()).encode(), None, [], "POST")
    if what == "method":
        return what, ("post", path, json.dumps(delivery()).encode(), None, [], draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])))
    lines = draw(st.lists(st.binary(max_size=30).map(lambda line: b"X" + line.replace(b"\n", b"").replace(b"\r", b"")), max_size=4))
    body = draw(st.binary(max_size=100))
    request = b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: %d\r\n" % (path.encode(), len(body))
    return what, ("raw", request + b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body)


step = st.one_of(st.tuples(st.just("valid"), valid_bodies(), content_types, extra_headers), st.tuples(st.just("junk"), junk()))


def test_no_input_makes_the_source_fail_or_lose_a_callback(source):
    expected = []  # the event ids of the valid callbacks sent

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(step, min_size=1, max_size=6))
    def throw(steps):
        for item in steps:
            if item[0] == "valid":
                (kind, body), content_type, extra = item[1:]
                status = source.post("/%s/%s" % (ACCOUNT, SERVICE[kind]), json.dumps(body).encode(), headers_of(content_type, extra))
                assert status == 200, (kind, body, content_type, extra)
                expected.append(callback_event(SERVICE[kind], ACCOUNT, without(body, "username", "password"))["event_id"])
                continue
            how, request = item[1]
            if request[0] == "raw":
                status = source.raw(request[1])
                assert status is None or 400 <= status < 500, (how, request, status)
            else:
                _post, path, data, content_type, extra, method = request
                status = source.post(path, data, headers_of(content_type, extra), method)
                assert 400 <= status < 500, (how, path, data[:300], content_type, extra, method, status)

    throw()
    queued = [event["event_id"] for event in source.events()]
    assert sorted(queued) == sorted(expected) and len(set(expected)) == len(expected)
    source.stop()  # the last queued marks are written when the source stops
    recorded = Ledger(str(source.ledger)).store.rows("SELECT event_id, queued_at IS NOT NULL FROM callbacks")
    assert sorted(recorded) == sorted((event_id, True) for event_id in expected)
