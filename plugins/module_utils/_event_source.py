# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal use only: what the collection's event sources (extensions/eda/plugins/event_source/) share: their
arguments, and the order in which an event is recorded and queued (``Recording``).

ansible-rulebook hands a source its arguments as the rulebook wrote them, after templating: a number may come as a
string (``port: "{{ PORT }}"`` with PORT from the environment), an unset variable as None. ``source_options``
checks them against a table and converts them, so a typo or a wrong value stops the source when it starts,
naming the argument.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from importlib.util import find_spec

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import MemoryRecorder
from ansible_collections.thingspace.m2m.plugins.module_utils.env import ENV_VARS
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.private_files import DEFAULT_STATE_DIR

REQUIRED = object()
# ansible-rulebook adds this argument itself when it runs with a feedback queue.
RULEBOOK_ARGS = ("eda_feedback_queue",)
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _convert(kind, value):
    """``value`` as ``kind`` (str, int, float, bool or list); ValueError with what was expected."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("expected true or false")
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("expected a number")
        try:
            converted = kind(value)
        except ValueError:
            raise ValueError("expected %s" % ("a whole number" if kind is int else "a number"))
        if kind is int and isinstance(value, float) and value != converted:
            raise ValueError("expected a whole number")
        return converted
    if kind is list:
        if isinstance(value, str):
            value = [item for item in (part.strip() for part in value.split(",")) if item]
        if not isinstance(value, list) or not all(isinstance(item, (str, int)) for item in value):
            raise ValueError("expected a list of strings (or one comma-separated string)")
        return [str(item) for item in value]
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise ValueError("expected a string")


def source_options(source, args, spec, env=None):
    """The options of ``source`` from its ``args``: ``spec`` maps each option to ``(type, default)`` (``REQUIRED``
    for none), ``env`` an option to the environment variable read when the argument is absent or None. ValueError
    naming the option for an unknown, missing or wrong argument."""
    unknown = sorted(set(args) - set(spec) - set(RULEBOOK_ARGS))
    if unknown:
        raise ValueError("%s: unknown argument(s) %s; the arguments are %s" % (source, ", ".join(unknown), ", ".join(spec)))
    options = {}
    for name, (kind, default) in spec.items():
        value = args.get(name)
        if value is None and name in (env or {}):
            value = os.environ.get(env[name]) or None
        if value is None:
            if default is REQUIRED:
                hint = " (or the environment variable %s)" % env[name] if name in (env or {}) else ""
                raise ValueError("%s: the argument %s is required%s" % (source, name, hint))
            options[name] = default
            continue
        try:
            options[name] = _convert(kind, value)
        except ValueError as exc:
            # The value is not shown: it may be a secret.
            raise ValueError("%s: the argument %s has the wrong type: %s" % (source, name, exc))
    return options


@contextlib.contextmanager
def stops_rulebook(source):
    """What stops ``source`` for good (a wrong option, a store that cannot be opened, a certificate or port that
    cannot be used, a refused login) as SystemExit with one line that starts with the source's name: ansible-rulebook
    logs it, stops the other sources (they close their stores) and exits 1 with that line as its last, without the
    traceback it prints for any other exception of a source."""
    try:
        yield
    except (ValueError, OSError, ThingSpaceError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise SystemExit(message if message.startswith(source + ": ") else "%s: %s" % (source, message)) from None


LEDGER, MEMORY = "ledger", "memory"
# The arguments that choose where a source records events: the ledger's store, found as the modules find it, or
# memory. Each source documents them; but for state_dir (one source keeps its token cache there too) with this text,
# copied into its DOCUMENTATION, which ansible-rulebook and the docs build read literally (no doc fragments for event
# sources): tests/unit/extensions/eda/plugins/event_source/test_documentation.py fails when a copy drifts.
STORE_DOCUMENTATION = r"""
options:
  store:
    description:
      - Where events are recorded. V(ledger) is the ledger's store (the SQLite file of O(ledger_path) or O(state_dir),
        or the PostgreSQL database of O(ledger_url)), where repeats are found whenever they come and the callbacks'
        delivery states are kept. V(memory) keeps only the identities of the last O(dedupe_window) events, until the
        source stops; it records no delivery state.
    type: str
    choices: [ledger, memory]
    default: ledger
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
STORE_OPTIONS = {
    "store": (str, LEDGER),
    "state_dir": (str, DEFAULT_STATE_DIR),
    "ledger_path": (str, None),
    "ledger_url": (str, None),
    "ledger_password": (str, None),
    "ledger_schema": (str, "thingspace"),
    "dedupe_window": (int, 100000),
}
STORE_ENV = {name: ENV_VARS[name] for name in ("state_dir", "ledger_path", "ledger_url", "ledger_password", "ledger_schema")}


def check_store(source, options):
    """ValueError naming the store argument of ``options`` that is wrong; a PostgreSQL ledger is checked as the modules
    check it, before anything connects."""
    if options["store"] not in (LEDGER, MEMORY):
        raise ValueError("%s: store must be %s or %s, not %r" % (source, LEDGER, MEMORY, options["store"]))
    if options["dedupe_window"] < 1:
        raise ValueError("%s: dedupe_window must be 1 or more" % source)
    if options["store"] == LEDGER and options["ledger_url"]:
        from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import schema_problem, url_problem

        problem = url_problem(options["ledger_url"]) or schema_problem(options["ledger_schema"])
        if problem:
            raise ValueError("%s: %s" % (source, problem))
        if find_spec("psycopg") is None:
            raise ValueError("%s: ledger_url needs the Python library psycopg (pip install psycopg)" % source)


def store_named(options, recorder):
    """Where ``recorder`` (made for ``options``) records, for the source's start line: the ledger's file or database
    (without its password), memory, or the class of a recorder that names no place."""
    if recorder.where is None:
        return type(recorder).__name__
    return ("the ledger " if options["store"] == LEDGER else "") + recorder.where


def make_recorder(options):
    """The recorder ``options`` choose; ``Recording.start`` calls it in the thread that uses it."""
    if options["store"] == MEMORY:
        return MemoryRecorder(options["dedupe_window"])
    from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder
    from ansible_collections.thingspace.m2m.plugins.module_utils.module import ledger_location

    return StoreRecorder(ledger_location(options))


class InFlight(ThingSpaceError):
    """An event another instance of the source recorded and has not queued yet, after waiting ``IN_FLIGHT_WAIT``
    seconds for it: not acknowledged (the callbacks source answers 503, so ThingSpace sends it again)."""


# How long a source waits for another instance to queue an event it recorded (it marks it queued within MARK_DELAY),
# and how often it looks.
IN_FLIGHT_WAIT = 5.0
IN_FLIGHT_POLL = 0.05
# How long the queued marks wait for events to ride with before the recorder is called for them alone: under load
# they go with the next batch, at no cost of their own (docs/design.md, "Delivery states: the callbacks in the store").
MARK_DELAY = 0.05


class Recording:
    """Records events through ``recorder`` (a callback_events.CallbackRecorder, called in ``executor``, a
    one-thread pool) and puts the new ones on the rulebook's ``queue``: an event is queued only after it is
    recorded, and ``put`` returns only after that, so what a source acknowledges is recorded.

    Events arriving while the recorder is busy are recorded together in its next call (one transaction for
    many callbacks). Which events were queued is told to the recorder in its next call, made within MARK_DELAY when no
    event comes, so a callback recorded but never queued (the source died in between, and ThingSpace sends it again) is
    queued when it comes again, and another instance of the source on the same ledger, which waits while this one's
    recorder has an event unmarked, soon sees it queued."""

    @classmethod
    async def start(cls, queue, new_recorder, executor):
        """A Recording with the recorder ``new_recorder()`` makes, made in ``executor`` (the thread that uses it: an
        SQLite connection stays in its thread); ``executor`` is shut down when that fails."""
        try:
            recorder = await asyncio.get_running_loop().run_in_executor(executor, new_recorder)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(queue, recorder, executor)

    def __init__(self, queue, recorder, executor):
        self.queue = queue
        self.recorder = recorder
        self.executor = executor
        self._waiting = []  # (event, future) not handed to the recorder yet
        self._queued = []  # identities queued since the recorder's last call
        self._unmarked = set()  # identities queued that the recorder does not know to be queued yet
        self._flusher = None
        self._wake = None  # while the flusher waits for events: the future a put sets
        self._closed = False

    async def put(self, event, host=None):
        """Record ``event`` and queue it (with ``meta.hosts`` = ``host`` when given) when new; True when queued.
        Raises what the recorder raised, and InFlight when another instance holds the event unqueued too long."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + IN_FLIGHT_WAIT
        while True:
            future = loop.create_future()
            self._waiting.append((event, future))
            if self._wake is not None:
                _settle(self._wake)
            self._flush_soon()
            new = await future
            if new is not None:
                break
            if loop.time() >= deadline:
                raise InFlight("another instance of the source recorded it and has not queued it yet")
            await asyncio.sleep(IN_FLIGHT_POLL)
        event_id = event["event_id"]
        if not new or event_id in self._unmarked:  # in the recorder's call with the first copy, or queued but not marked yet
            return False
        self._unmarked.add(event_id)
        await self.queue.put(dict(event, meta={"hosts": host}) if host else event)
        self._queued.append(event_id)
        self._flush_soon()
        return True

    def _flush_soon(self):
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self):
        loop = asyncio.get_running_loop()
        while not self._closed and (self._waiting or self._queued):
            if not self._waiting:
                await self._events_or(MARK_DELAY)
                if self._closed:
                    return  # close() took the marks
            batch, self._waiting = self._waiting, []
            queued, self._queued = self._queued, []
            try:
                found = await loop.run_in_executor(self.executor, self.recorder.record, [event for event, _future in batch], queued)
            except Exception as exc:  # the recorder's own errors, reported to each caller
                self._queued[:0] = queued
                for _event, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not self._waiting:
                    return  # the marks ride on the next call
                continue
            self._unmarked.difference_update(queued)
            for (_event, future), new in zip(batch, found):
                if not future.done():
                    future.set_result(new)

    async def _events_or(self, seconds):
        """Until an event is put, or ``seconds`` passed."""
        loop = asyncio.get_running_loop()
        self._wake = loop.create_future()
        timer = loop.call_later(seconds, _settle, self._wake)
        try:
            await self._wake
        finally:
            timer.cancel()
            self._wake = None

    def close(self):
        """Tell the recorder what was queued since its last call, then close it, in the executor after any call in
        flight; the concurrent future of that."""
        self._closed = True
        queued, self._queued = self._queued, []
        return self.executor.submit(self._close, queued)

    def _close(self, queued):
        try:
            if queued:
                self.recorder.record([], queued)
        finally:
            self.recorder.close()


def _settle(future):
    if not future.done():
        future.set_result(None)
