# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""thingspace.m2m.callbacks: an ansible-rulebook event source that receives ThingSpace's callbacks over HTTP(S)."""

from __future__ import annotations

import os
import sys

# ansible-rulebook runs this file with runpy, outside any package: the collection's own code is importable once
# the directory that holds ansible_collections/ is on sys.path (seven levels up from here in an installed collection).
_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), *[os.pardir] * 7))
if os.path.isdir(os.path.join(_ROOT, "ansible_collections", "thingspace", "m2m")) and _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import asyncio
import hmac
import ipaddress
import json
import logging
import re
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ansible_collections.thingspace.m2m.plugins.module_utils._event_source import (
    REQUIRED,
    STORE_ENV,
    STORE_OPTIONS,
    InFlight,
    Recording,
    check_store,
    make_recorder,
    source_options,
    stops_rulebook,
    store_named,
)
from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import CallbackError, callback_event, device_host
from ansible_collections.thingspace.m2m.plugins.module_utils.callbacks import LISTENER_PORTS
from ansible_collections.thingspace.m2m.plugins.module_utils.loopback import is_loopback

DOCUMENTATION = r"""
---
short_description: Receive ThingSpace M2M callbacks (SMS sent, request complete, delivery confirmations, device SMS).
description:
  - An ansible-rulebook event source, an HTTP(S) listener for the callbacks ThingSpace sends to the URLs registered
    with M(thingspace.m2m.vz_callback) or M(thingspace.m2m.vz_sms_start_callbacks).
  - Register C(<scheme>://<host>:<port><path>/<account>/<service>), for example
    C(https://iot.example.com:9002/thingspace/0000123456-00001/SMSDeliveryConfirmation). The callback bodies name
    neither the account nor the service, so the URL does. The services taken are C(EnhancedConnectivityService)
    and C(SMSDeliveryConfirmation); another service, a body that is not JSON or not one of the vendor's shapes
    for the service is answered 400 and logged, and the source keeps serving.
  - Every body carries the C(username) and C(password) given at registration. When O(username) and O(password)
    are set, both are compared in constant time and a callback without them, or with others, is answered 401.
    They are removed from every body before anything else reads it, so they are in no event and no log line.
  - Each callback is recorded before it is answered 2xx, by default in the ledger the modules use (O(store)), with
    the delivery state of each device that M(thingspace.m2m.vz_sms_delivery_info) and the O(thingspace.m2m.vz_sms_send#module:wait)
    of M(thingspace.m2m.vz_sms_send) read. A callback that cannot be recorded is answered 503, so ThingSpace sends it
    again (up to 4 attempts in all, whenever it gets no 2xx); a repeat of a recorded callback is answered 200 and not
    queued again, unless the source stopped before queuing it. The identity of a callback is its type, account,
    request id, device identifiers and state, status or message text (never C(callbackCount)).
  - Callbacks that arrive while the store is writing are recorded together, in one transaction.
  - One event per callback, with the keys C(event_id), C(type) (C(sms_sent), C(request_complete),
    C(sms_delivery), C(device_sms)), C(service), C(via) (C(callback)), C(account), C(request_id), C(devices)
    (C([{kind, id}]), kinds in lower case), C(state), C(status), C(comment), C(devices_requested), C(message),
    C(sent_at) and C(received_at); keys that do not apply to the type are null.
options:
  host:
    description:
      - The address to listen on. Plain HTTP on an address that is not loopback is refused unless
        O(allow_insecure_http) is set, because ThingSpace puts the listener credentials in every body.
    type: str
    default: 127.0.0.1
  port:
    description:
      - The TCP port to listen on. ThingSpace accepts listener URLs on the ports 80, 443, 9001-9006, 50551-50559 and
        28200-28220 only; another port is refused unless O(check_port=false) (behind a reverse proxy that listens
        on an accepted port).
    type: int
    required: true
  check_port:
    description:
      - Refuse a O(port) ThingSpace does not accept. Set it to false when ThingSpace reaches the source through a
        reverse proxy (or a test emulator that takes any port).
    type: bool
    default: true
  path:
    description:
      - The URL path under which the source takes callbacks; a callback goes to C(<path>/<account>/<service>).
    type: str
    default: /
  username:
    description:
      - The callback username given at registration. Falls back to the environment variable
        E(THINGSPACE_CALLBACK_USERNAME).
      - Set both O(username) and O(password), or neither (then any client that reaches the port can post callbacks).
    type: str
  password:
    description:
      - The callback password given at registration. Falls back to the environment variable
        E(THINGSPACE_CALLBACK_PASSWORD).
    type: str
  certfile:
    description:
      - A PEM certificate (chain) file; with it the source listens with TLS.
    type: str
  keyfile:
    description:
      - The PEM private key of O(certfile), when the certificate file does not hold it.
    type: str
  allow_insecure_http:
    description:
      - Listen with plain HTTP on an address that is not loopback, for a TLS reverse proxy on a network you trust.
    type: bool
    default: false
  allowed_networks:
    description:
      - Networks (C(192.0.2.0/24), C(2001:db8::/32), or single addresses) the source takes callbacks from; a client
        from elsewhere is answered 403 before its body is read. Behind a reverse proxy the client is the proxy.
    type: list
    elements: str
  max_body_size:
    description:
      - The largest body taken, in bytes; a larger one is answered 413. Callback bodies are under 2 KiB.
    type: int
    default: 65536
  meta_hosts:
    description:
      - Identifier kinds, in order of preference (for example C([mdn, iccid])); when set, the event's
        C(meta.hosts) is the device's identifier of the first of these kinds it has, so a rule's action runs on
        that inventory host. Delivery confirmations name the device by its MDN only. A C(request_complete) event
        has no device and no C(meta.hosts).
    type: list
    elements: str
  store:
    description:
      - Where events are recorded. V(ledger) is the ledger's store (the SQLite file of O(ledger_path) or O(state_dir),
        or the PostgreSQL database of O(ledger_url)), where repeats are found whenever they come and the callbacks'
        delivery states are kept. V(memory) keeps only the identities of the last O(dedupe_window) events, until the
        source stops; it records no delivery state.
    type: str
    choices: [ledger, memory]
    default: ledger
  state_dir:
    description:
      - The directory of the default ledger file, C(ledger.sqlite3) (E(THINGSPACE_STATE_DIR)), as for the modules.
    type: str
    default: ~/.ansible/thingspace
  ledger_path:
    description: The SQLite ledger file instead of the one in O(state_dir) (E(THINGSPACE_LEDGER_PATH)).
    type: str
  ledger_url:
    description:
      - A PostgreSQL ledger, as a libpq URL such as C(postgresql://thingspace@db.example.com:5432/thingspace?sslmode=verify-full)
        (E(THINGSPACE_LEDGER_URL)). Needs the Python library psycopg. The sources and the modules must use the same one.
    type: str
  ledger_password:
    description: The password of O(ledger_url) (E(THINGSPACE_LEDGER_PASSWORD)); else from the URL, PGPASSWORD or PGPASSFILE.
    type: str
  ledger_schema:
    description: The schema of the PostgreSQL ledger's tables (E(THINGSPACE_LEDGER_SCHEMA)).
    type: str
    default: thingspace
  dedupe_window:
    description:
      - With O(store=memory), how many event identities the source remembers to find repeats.
    type: int
    default: 100000
"""

EXAMPLES = r"""
- name: Delivery states and device SMS of the demo account
  hosts: all
  sources:
    - thingspace.m2m.callbacks:
        host: 0.0.0.0
        port: 9002
        certfile: /etc/pki/tls/certs/iot.example.com.pem
        keyfile: /etc/pki/tls/private/iot.example.com.key
        allowed_networks: [192.0.2.0/24]
        meta_hosts: [mdn]
        # username and password from THINGSPACE_CALLBACK_USERNAME and THINGSPACE_CALLBACK_PASSWORD
  rules:
    - name: Report an undelivered SMS
      condition: event.type == "sms_delivery" and event.state != "Delivered"
      action:
        debug:
          msg: "{{ event.devices[0].id }}: {{ event.state }}"
"""

SOURCE = "thingspace.m2m.callbacks"
OPTIONS = {
    "host": (str, "127.0.0.1"),
    "port": (int, REQUIRED),
    "check_port": (bool, True),
    "path": (str, "/"),
    "username": (str, None),
    "password": (str, None),
    "certfile": (str, None),
    "keyfile": (str, None),
    "allow_insecure_http": (bool, False),
    "allowed_networks": (list, None),
    "max_body_size": (int, 65536),
    "meta_hosts": (list, None),
    **STORE_OPTIONS,
}
ENV = {"username": "THINGSPACE_CALLBACK_USERNAME", "password": "THINGSPACE_CALLBACK_PASSWORD", **STORE_ENV}

logger = logging.getLogger(SOURCE)


def _settings(args):
    """The checked options; ValueError naming the argument that is wrong."""
    options = source_options(SOURCE, args, OPTIONS, ENV)
    if not 0 < options["port"] < 65536:
        raise ValueError("%s: port %d is not a TCP port" % (SOURCE, options["port"]))
    if options["check_port"] and options["port"] not in LISTENER_PORTS:
        raise ValueError("%s: ThingSpace accepts listener URLs only on the ports 80, 443, 9001-9006, 50551-50559 and 28200-28220, "
                         "not %d; behind a reverse proxy that listens on one of them, set check_port: false" % (SOURCE, options["port"]))
    if (options["username"] is None) != (options["password"] is None):
        raise ValueError("%s: set both username and password (the callback credentials given at registration), or neither" % SOURCE)
    if options["keyfile"] and not options["certfile"]:
        raise ValueError("%s: keyfile needs certfile" % SOURCE)
    if not options["certfile"] and not is_loopback(options["host"]) and not options["allow_insecure_http"]:
        raise ValueError("%s: plain HTTP on %s, which is not loopback: ThingSpace puts the listener username and password in every "
                         "body, in clear. Set certfile (and keyfile), or allow_insecure_http: true behind a TLS reverse proxy on a "
                         "network you trust" % (SOURCE, options["host"]))
    path = "/" + options["path"].strip("/")
    if "{" in path or "}" in path:
        raise ValueError("%s: path %r must not contain braces" % (SOURCE, options["path"]))
    options["path"] = path.rstrip("/")
    try:
        options["allowed_networks"] = [ipaddress.ip_network(network, strict=False) for network in options["allowed_networks"] or ()] or None
    except ValueError as exc:
        raise ValueError("%s: allowed_networks: %s" % (SOURCE, exc))
    if options["max_body_size"] < 1:
        raise ValueError("%s: max_body_size must be 1 or more bytes" % SOURCE)
    options["meta_hosts"] = [kind.lower() for kind in options["meta_hosts"] or ()]
    check_store(SOURCE, options)
    return options


# The vendor's bodies nest 3 levels (deviceResponse.smsDeliveryResponse.confirmation); a deeper one is no callback.
MAX_DEPTH = 16
# What neither UTF-8 nor PostgreSQL's text can hold: a NUL character and a lone surrogate (a \ud800 escape).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class BodyError(ValueError):
    """A body that cannot be a callback, whatever its service: the reason, answered with a 400."""


def _unique_keys(pairs):
    body = dict(pairs)
    if len(body) != len(pairs):
        raise BodyError("the body has a key twice in one object")
    return body


def _no_constant(name):
    raise BodyError("the body is not JSON (%s is no JSON value)" % name)


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def read_body(data):
    """The JSON object of the body ``data`` (bytes); BodyError when it is not UTF-8, not strict JSON (no NaN or Infinity,
    no key twice in an object), not an object, nests more than MAX_DEPTH levels or has a string nothing can store."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("the body is not UTF-8")
    try:
        body = _DECODER.decode(text)
    except RecursionError:
        raise BodyError("the body nests more than %d levels" % MAX_DEPTH)
    except BodyError:
        raise
    except ValueError:
        raise BodyError("the body is not JSON")
    if not isinstance(body, dict):
        raise BodyError("the body is not a JSON object")
    # Most bodies pass in one look at the text: a NUL or a surrogate comes only as a \u escape (strict JSON refuses a
    # raw NUL, UTF-8 holds no surrogate), and containers nest no deeper than there are brackets.
    if "\\u" not in text and text.count("{") + text.count("[") <= MAX_DEPTH:
        return body
    pending = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                raise BodyError("the body has a NUL character or a lone surrogate in a string")
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise BodyError("the body nests more than %d levels" % MAX_DEPTH)
        items = [item for pair in value.items() for item in pair] if isinstance(value, dict) else value
        pending.extend((item, depth + 1) for item in items)
    return body


def _one_line(text):
    """``text`` with its control characters escaped: a log line never breaks, whatever a client sent."""
    return "".join(character if character.isprintable() else ascii(character)[1:-1] for character in text)


class _ServerLog(logging.LoggerAdapter):
    """aiohttp's log: a request it refuses itself (a malformed request line or header) on one line, without a
    traceback; the rest of a broken body, which the handler refused already, only at debug level; anything else as
    aiohttp logs it."""

    def log(self, level, msg, *args, exc_info=None, **kwargs):
        if isinstance(exc_info, HttpProcessingError):
            level, msg, args, exc_info = logging.WARNING, "Refused a request from %s: HTTP %d, %s", (
                args[0] if args else "?", exc_info.code, _one_line(exc_info.message)), None
        elif isinstance(exc_info, web.RequestPayloadError):
            level, msg, args, exc_info = logging.DEBUG, "Dropped the rest of a body that cannot be read: %s", (_one_line(str(exc_info)),), None
        super().log(level, msg, *args, exc_info=exc_info, **kwargs)


def _ssl_context(certfile, keyfile):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


def _peer_address(request):
    address = ipaddress.ip_address(request.remote)
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _matches(given, expected):
    """Constant-time comparison of a credential from the body with the configured one (missing: no match)."""
    given = given.encode("utf-8") if isinstance(given, str) else b""
    return hmac.compare_digest(given, expected.encode("utf-8"))


class Receiver:
    """The HTTP side: checks each callback, then has ``recording`` (an _event_source.Recording) record and queue it;
    answers 2xx only once it is recorded."""

    def __init__(self, settings, recording):
        self.settings = settings
        self.recording = recording

    def refuse(self, request, status, reason):
        reason = _one_line(reason)
        logger.warning("Refused a callback from %s to %s: HTTP %d, %s", request.remote, _one_line(request.raw_path), status, reason)
        return web.Response(status=status, text=reason + "\n")

    @web.middleware
    async def unrouted(self, request, handler):
        """A request to no callback URL, or not a POST: aiohttp's 404 or 405, on one log line."""
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return self.refuse(request, 404, "not a callback URL: callbacks go to %s/<account>/<service>" % self.settings["path"])
        except web.HTTPMethodNotAllowed as exc:
            response = self.refuse(request, 405, "callbacks are posted, not sent with %s" % request.method)
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
            return response

    @web.middleware
    async def allow_list(self, request, handler):
        networks = self.settings["allowed_networks"]
        if networks is not None and not any(_peer_address(request) in network for network in networks):
            return self.refuse(request, 403, "the client address is not in allowed_networks")
        return await handler(request)

    async def handle(self, request):
        try:
            body = read_body(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return self.refuse(request, 413, "the body is over max_body_size (%d bytes)" % self.settings["max_body_size"])
        except web.RequestPayloadError as exc:  # a broken chunked or compressed body; aiohttp's text ends with the reason
            return self.refuse(request, 400, "the body cannot be read: %s" % (str(exc).strip().splitlines() or ["?"])[-1].strip())
        except BodyError as exc:
            return self.refuse(request, 400, str(exc))
        if _UNSTORABLE.search(request.match_info["account"]):
            return self.refuse(request, 400, "the account in the URL has a NUL character or a lone surrogate")
        username, password = body.pop("username", None), body.pop("password", None)
        if self.settings["username"] is not None:
            # Both compared every time: how long the check takes says nothing about which one differs.
            matched = [_matches(username, self.settings["username"]), _matches(password, self.settings["password"])]
            if not all(matched):
                return self.refuse(request, 401, "wrong or missing username or password")
        del username, password
        try:
            event = callback_event(request.match_info["service"], request.match_info["account"], body)
        except CallbackError as exc:
            return self.refuse(request, 400, str(exc))
        try:
            queued = await self.recording.put(event, device_host(event, self.settings["meta_hosts"]))
        except Exception as exc:
            # Another instance holding it is no failure of this one.
            logger.log(logging.WARNING if isinstance(exc, InFlight) else logging.ERROR,
                       "Could not record a %s callback of request %s (answered 503, ThingSpace sends it again): %s: %s",
                       event["type"], event["request_id"], type(exc).__name__, exc)
            return web.Response(status=503, text="not recorded\n")
        logger.debug("%s %s callback %s of request %s", "Queued" if queued else "Repeated", event["type"], event["event_id"], event["request_id"])
        return web.Response(status=200)


async def serve(queue: asyncio.Queue[Any], settings: dict[str, Any], new_recorder) -> None:
    """Serve callbacks with ``settings`` (as ``_settings`` returns them) until cancelled, recording them through the
    recorder ``new_recorder()`` makes (in the recorder's thread, before listening), which is closed at the end."""
    context = _ssl_context(settings["certfile"], settings["keyfile"]) if settings["certfile"] else None
    # One thread: the recorder is called one call at a time, in arrival order, and may block.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thingspace-recorder")
    recording = await Recording.start(queue, new_recorder, executor)
    receiver = Receiver(settings, recording)
    app = web.Application(middlewares=[receiver.unrouted, receiver.allow_list], client_max_size=settings["max_body_size"])
    app.router.add_post(settings["path"] + "/{account}/{service}", receiver.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, logger=_ServerLog(logger, {}))
    try:
        await runner.setup()
        await web.TCPSite(runner, settings["host"], settings["port"], ssl_context=context).start()
        logger.info("%s listening on address %s, port %d, path %s/<account>/<service>, TLS %s, recording in %s%s", SOURCE, settings["host"],
                    settings["port"], settings["path"], "on" if context else "off", store_named(settings, recording.recorder),
                    "" if settings["username"] is not None else " (no username and password set: any client that reaches it is taken)")
        await asyncio.Future()
    finally:
        await runner.cleanup()
        recording.close()
        executor.shutdown(wait=True)


async def main(queue: asyncio.Queue[Any], args: dict[str, Any]) -> None:
    """The ansible-rulebook entry point; SystemExit with one line when the source cannot start."""
    with stops_rulebook(SOURCE):
        settings = _settings(args)
        await serve(queue, settings, lambda: make_recorder(settings))
