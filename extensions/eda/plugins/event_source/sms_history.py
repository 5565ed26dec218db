# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""thingspace.m2m.sms_history: an ansible-rulebook event source that polls the queue of SMS devices sent to an account."""

from __future__ import annotations

import os
import sys

# ansible-rulebook runs this file with runpy, outside any package: the collection's own code is importable once
# the directory that holds ansible_collections/ is on sys.path (seven levels up from here in an installed collection).
_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), *[os.pardir] * 7))
if os.path.isdir(os.path.join(_ROOT, "ansible_collections", "thingspace", "m2m")) and _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from ansible_collections.thingspace.m2m.plugins.module_utils._event_source import (
    REQUIRED,
    STORE_ENV,
    STORE_OPTIONS,
    Recording,
    check_store,
    make_recorder,
    source_options,
    stops_rulebook,
    store_named,
)
from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Credentials, TokenCache, credentials_problem
from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import device_host, history_event
from ansible_collections.thingspace.m2m.plugins.module_utils.client import ThingSpaceClient
from ansible_collections.thingspace.m2m.plugins.module_utils.env import ENV_VARS
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.loopback import is_loopback
from ansible_collections.thingspace.m2m.plugins.module_utils.module import DEFAULT_API_URL
from ansible_collections.thingspace.m2m.plugins.module_utils.private_files import TOKEN_CACHE_NAME, state_path

DOCUMENTATION = r"""
---
short_description: Poll the SMS that devices sent to a ThingSpace account (GET /sms/{account}/history).
description:
  - An ansible-rulebook event source that reads the account's queue of mobile-originated SMS, the SMS that no
    callback listener took, and puts one event per message on the rulebook's queue.
  - ThingSpace removes a block of messages from its queue when the next block is asked for. The source asks for it
    only after every message of the block is queued, so a source stopped in between gets the block again. The last
    block of the queue (HTTP 200) is removed by ThingSpace once it is returned; a source stopped while that answer is
    on its way loses it.
  - Each message is recorded before the next block is asked for, by default in the ledger the modules use
    (O(store)), where the same message sent by callback to M(thingspace.m2m.callbacks) is found too. Repeats (a block
    read again) are queued once. The identity of a message is its account, device identifiers, text and timestamp.
  - Each event has the keys of the C(thingspace.m2m.callbacks) events, with C(type) C(device_sms), C(via)
    C(history), C(service) and C(request_id) null, C(message) and C(sent_at) (the timestamp ThingSpace gives).
  - A refused login, unknown account or wrong O(api_url) (any 4xx to the first read) stops the source; a login is
    never repeated on its own, since five consecutive failed logins lock the account. Other failures are logged
    and the read is tried again after O(interval).
  - Credentials and the token cache work as for the modules (see M(thingspace.m2m.vz_sms_receive)), with the same
    environment variables.
options:
  account_name:
    description: The billing account, with its leading zeros (quote it in YAML).
    type: str
    required: true
  interval:
    description: Seconds between two reads when the queue is empty, and after a failed read.
    type: float
    default: 60
  api_url:
    description: The ThingSpace base URL (E(THINGSPACE_API_URL)).
    type: str
    default: https://thingspace.verizon.com
  client_id:
    description: OAuth client id (E(THINGSPACE_CLIENT_ID)).
    type: str
  client_secret:
    description: OAuth client secret (E(THINGSPACE_CLIENT_SECRET)).
    type: str
  username:
    description: UWS username (E(THINGSPACE_USERNAME)).
    type: str
  password:
    description: UWS password (E(THINGSPACE_PASSWORD)).
    type: str
  access_token:
    description: A current OAuth access token instead of client_id and client_secret (E(THINGSPACE_ACCESS_TOKEN)).
    type: str
  session_token:
    description: A current VZ-M2M session token instead of username and password (E(THINGSPACE_SESSION_TOKEN)).
    type: str
  validate_certs:
    description: Check the API's TLS certificate.
    type: bool
    default: true
  allow_insecure_http:
    description: Allow a plain C(http) O(api_url) to a host that is not loopback.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for each answer.
    type: float
    default: 30
  retries:
    description: Attempts after the first for a read that failed in a way that allows repeating it.
    type: int
    default: 4
  token_cache:
    description: Share tokens with the modules through the token cache in O(state_dir).
    type: bool
    default: true
  meta_hosts:
    description:
      - Identifier kinds, in order of preference; when set, the event's C(meta.hosts) is the device's identifier of
        the first of these kinds it has.
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
    description: Where the token cache and the default ledger file are (E(THINGSPACE_STATE_DIR)).
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
- name: Device SMS that waited in the queue
  hosts: all
  sources:
    - thingspace.m2m.sms_history:
        account_name: "0000123456-00001"
        interval: 300
        # credentials from THINGSPACE_CLIENT_ID, THINGSPACE_CLIENT_SECRET, THINGSPACE_USERNAME, THINGSPACE_PASSWORD
  rules:
    - name: Show each message
      condition: event.type == "device_sms"
      action:
        debug:
          msg: "{{ event.devices[0].id }}: {{ event.message }}"
"""

SOURCE = "thingspace.m2m.sms_history"
CREDENTIALS = ("client_id", "client_secret", "username", "password", "access_token", "session_token")
OPTIONS = {
    "account_name": (str, REQUIRED),
    "interval": (float, 60.0),
    "api_url": (str, DEFAULT_API_URL),
    **{name: (str, None) for name in CREDENTIALS},
    "validate_certs": (bool, True),
    "allow_insecure_http": (bool, False),
    "timeout": (float, 30.0),
    "retries": (int, 4),
    "token_cache": (bool, True),
    "meta_hosts": (list, None),
    **STORE_OPTIONS,
}
ENV = {name: ENV_VARS[name] for name in ("api_url", *CREDENTIALS)}
ENV.update(STORE_ENV)

logger = logging.getLogger(SOURCE)


def _settings(args):
    """The checked options; ValueError naming the argument that is wrong."""
    options = source_options(SOURCE, args, OPTIONS, ENV)
    url = urlsplit(options["api_url"])
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ValueError("%s: api_url %r is not an http(s) URL such as %s" % (SOURCE, options["api_url"], DEFAULT_API_URL))
    if url.scheme == "http" and not is_loopback(url.hostname) and not options["allow_insecure_http"]:
        raise ValueError("%s: api_url %r is plain http to a host that is not loopback, so the secrets and tokens would cross the "
                         "network in clear; use https, or set allow_insecure_http: true" % (SOURCE, options["api_url"]))
    if options["interval"] <= 0 or options["timeout"] <= 0 or options["retries"] < 0:
        raise ValueError("%s: interval and timeout must be more than 0, retries 0 or more" % SOURCE)
    credentials = Credentials(*(options[name] for name in CREDENTIALS))
    problem = credentials_problem(credentials)
    if problem:
        raise ValueError("%s: missing credentials: %s" % (SOURCE, problem))
    options["credentials"] = credentials
    options["meta_hosts"] = [kind.lower() for kind in options["meta_hosts"] or ()]
    check_store(SOURCE, options)
    return options


def _client(settings):
    cache = TokenCache(state_path(settings["state_dir"], TOKEN_CACHE_NAME)) if settings["token_cache"] else None
    return ThingSpaceClient(settings["api_url"].rstrip("/"), settings["credentials"], token_cache=cache, timeout=settings["timeout"],
                            retries=settings["retries"], validate_certs=settings["validate_certs"])


async def poll(queue: asyncio.Queue[Any], settings: dict[str, Any], client, new_recorder) -> None:
    """Read the history of the account with ``client`` (a ThingSpaceClient) until cancelled or refused; each
    message is recorded through the recorder ``new_recorder()`` makes (in the recorder's thread) and, when new,
    queued, before the next block is asked for. The recorder is closed at the end."""
    account = settings["account_name"]
    loop = asyncio.get_running_loop()
    # One thread for the client and the recorder: neither is called concurrently, and the event loop never waits on them.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thingspace-history")
    recording = await Recording.start(queue, new_recorder, executor)
    logger.info("%s reading the SMS history of account %r from %s every %g s (TLS %s), recording in %s", SOURCE, account, settings["api_url"],
                settings["interval"], "on" if settings["api_url"].startswith("https:") else "off", store_named(settings, recording.recorder))
    next_path = None
    try:
        while True:
            try:
                messages, following = await loop.run_in_executor(executor, client.sms_history, account, next_path)
            except ThingSpaceError as error:
                if next_path is None and error.status is not None and 400 <= error.status < 500:
                    raise
                logger.warning("%s; reading the history of account %r again %s", error,
                               account, "from its start" if next_path else "in %g s" % settings["interval"])
                if next_path is None:
                    await asyncio.sleep(settings["interval"])
                next_path = None
                continue
            queued = 0
            for message in messages:
                event = history_event(account, message)
                queued += await recording.put(event, device_host(event, settings["meta_hosts"]))
            if messages:
                logger.info("Read %d SMS of account %r from the history, %d new", len(messages), account, queued)
            # Asking for the next block acknowledges this one, whose events are queued now.
            next_path = following
            if next_path is None:
                await asyncio.sleep(settings["interval"])
    finally:
        # After the call in flight, if any: a read may take up to timeout, which a stopping rulebook does not wait for.
        recording.close()
        executor.shutdown(wait=False)


async def main(queue: asyncio.Queue[Any], args: dict[str, Any]) -> None:
    """The ansible-rulebook entry point; SystemExit with one line when the source cannot start or its login is refused."""
    with stops_rulebook(SOURCE):
        settings = _settings(args)
        await poll(queue, settings, _client(settings), lambda: make_recorder(settings))
