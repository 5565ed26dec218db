# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Delivery states: what ThingSpace's callbacks said of the devices a send reached, kept in the ledger's store.

Recording (``StoreRecorder``, the recorder of the event sources):

- each callback event once, by its identity (``callback_events.event_identity``), as the normalized event (no
  listener credentials), with the time the source queued it. A repeat of an event that was recorded but never
  queued (the source died in between, so ThingSpace got no 2xx and sent it again) is queued then.
- per (request id, device) a state that only moves forward: ``sent`` (EnhancedConnectivityService, status
  Success: the network sent the SMS to the device), then ``Delivered``, ``Undelivered``, ``Expired`` or
  ``Rejected`` (SMSDeliveryConfirmation); the first of those is kept for good, and a late or repeated callback
  never moves it back.

A device's identity: a delivery confirmation names the device by its MDN only, while the ``sent`` callback names
each of its identifiers (ICCID, MDN, IMEI, MSISDN), and the ledger records a device by the identifier it was sent
to. A row is keyed by the callback's first identifier in ``DEVICE_KEY_ORDER`` and keeps the identifiers seen with
it (``aliases``); reading joins the rows of one request that share an identifier, so the confirmation of an MDN
reaches the ICCID the ledger sent to.

Reading (``delivery_report``): each target the ledger holds under a key, or each device of given request ids, with
its state. ``wait_for_delivery`` reads it until enough devices are Delivered.
"""

from __future__ import annotations

import json
import math
import time
from itertools import chain

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import ACCEPTED, DELIVERY_STATES, UNCONFIRMED, CallbackRecorder
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import PENDING, REFUSED, SENT, UNKNOWN, Ledger, iso_time
from ansible_collections.thingspace.m2m.plugins.module_utils.send import SELECTION, device_of

DELIVERED = "Delivered"
# The network sent the SMS to the device; its delivery is not confirmed yet.
SENT_TO_DEVICE = "sent"
FINAL_STATES = DELIVERY_STATES
REPORT_STATES = (*FINAL_STATES, SENT_TO_DEVICE, ACCEPTED, UNCONFIRMED)
# The identifier a device's row is keyed by: the first of these kinds the callback names.
DEVICE_KEY_ORDER = ("mdn", "msisdn", "iccid", "imei", "eid", "meid", "esn", "imsi")
# The status of an EnhancedConnectivityService callback that says the SMS went to the device.
SENT_STATUS = "Success"
# json.dumps with these arguments, without making an encoder per call: a device's identifiers, and the stored event.
_ALIASES_JSON = json.JSONEncoder(separators=(",", ":")).encode
_EVENT_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode

# Forward only: a row leaves ``sent`` once, for the state of the first confirmation; the longest list of
# identifiers (the ``sent`` callback's) is kept. A row that would not change is not written (a repeat's: no new row
# version, nothing to log).
_UPSERT_DELIVERY = (
    "INSERT INTO deliveries (request_id, device, state, aliases, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (request_id, device) DO UPDATE SET "
    "state = CASE WHEN deliveries.state = 'sent' THEN excluded.state ELSE deliveries.state END, "
    "updated_at = CASE WHEN deliveries.state = 'sent' AND excluded.state <> 'sent' THEN excluded.updated_at ELSE deliveries.updated_at END, "
    "aliases = CASE WHEN length(excluded.aliases) > length(deliveries.aliases) THEN excluded.aliases ELSE deliveries.aliases END "
    "WHERE (deliveries.state = 'sent' AND excluded.state <> 'sent') OR length(excluded.aliases) > length(deliveries.aliases)"
)


def _identifiers(event):
    return sorted("%s:%s" % (device["kind"], device["id"]) for device in event["devices"])


def _delivery_row(event, now):
    """The deliveries row of a ``sms_sent`` (status Success) or ``sms_delivery`` event; None for other events."""
    if event["type"] == "sms_delivery":
        state = event["state"]
    elif event["type"] == "sms_sent" and event["status"] == SENT_STATUS:
        state = SENT_TO_DEVICE
    else:
        return None
    aliases = _identifiers(event)
    return (event["request_id"], min(aliases, key=_key_rank), state, _ALIASES_JSON(aliases), now)


class StoreRecorder(CallbackRecorder):
    """Records events in the ledger's store at ``location`` (a path or a ``_store_postgresql.Database``, as
    ``Ledger`` takes it), creating or migrating its schema. One call at a time; each call is one transaction. After a
    failed call the store is opened again at the next one, so a source outlives a database restart.

    The recorder holds a claim of the store (``hold``: an flock on SQLite, a session advisory lock on PostgreSQL) for
    as long as it is open, and writes its id as ``recorded_by`` of each callback it records: a repeat of a callback
    recorded but not marked queued yet is in flight at that recorder while the claim is live (another source
    instance behind the same load balancer), and was never queued when it is not (the recorder died)."""

    def __init__(self, location):
        self._location = location
        self._ledger = self._owner = None
        self._open()
        self.where = self._ledger.where

    def _open(self):
        self._ledger = Ledger(self._location)
        try:
            self._owner = self._ledger.store.hold()
        except BaseException:
            self._ledger.close()
            raise

    def record(self, events, queued=()):
        if self._ledger is None:
            self._open()
        try:
            return self._record(self._ledger.store, events, queued)
        except ThingSpaceError:
            self._ledger.close()
            self._ledger = None
            raise

    def unknown(self, events):
        """The events of ``events`` the store does not hold yet (by identity)."""
        if self._ledger is None:
            self._open()
        store, known = self._ledger.store, set()
        for among, values in store.among([event["event_id"] for event in events]):
            known.update(row[0] for row in store.rows("SELECT event_id FROM callbacks WHERE event_id %s" % among, values))
        return [event for event in events if event["event_id"] not in known]

    def _record(self, store, events, queued):
        """One transaction, in one round trip on PostgreSQL: the queued marks, the delivery states, the new callbacks in
        one statement, and how each callback of ``events`` stands after them. Rows go in key order, as every instance
        writes them, so that two instances recording the same callbacks wait for each other instead of deadlocking. A
        repeat's delivery state changes nothing (its first copy moved the state already), so every callback's is
        written without waiting to learn which are new."""
        now = time.time()
        first = {}
        for event in events:
            first.setdefault(event["event_id"], event)
        deliveries = [row for row in (_delivery_row(event, now) for event in first.values()) if row is not None]
        queued, event_ids = sorted(queued), sorted(first)
        with store.pipelined_transaction():
            for among, values in store.among(queued):
                store.execute("UPDATE callbacks SET queued_at = ? WHERE event_id %s" % among, [now, *values])
            # Stable by key: the callbacks of one device keep their order of arrival, which decides its state.
            store.executemany(_UPSERT_DELIVERY, sorted(deliveries, key=lambda row: row[:2]))
            store.insert_callbacks([(event_id, first[event_id]["type"], first[event_id]["account"], first[event_id]["request_id"],
                                     _event_text(first[event_id]), now, self._owner) for event_id in event_ids])
            reads = [store.rows_after("SELECT event_id, queued_at, recorded_by FROM callbacks WHERE event_id %s" % among, values)
                     for among, values in store.among(event_ids)]
        answers = self._answers(store, [row for read in reads for row in read()])
        found, seen = [], set()
        for event in events:
            event_id = event["event_id"]
            found.append(False if event_id in seen else answers[event_id])
            seen.add(event_id)
        return found

    def _answers(self, store, rows):
        """event id → the answer for each of ``rows`` (event_id, queued_at, recorded_by): False once queued; else True
        when this recorder recorded it (now or before) or takes it over from one that is gone, None while the live
        recorder of another instance has it."""
        answers, unqueued = {}, {}
        for event_id, queued_at, owner in rows:
            if queued_at is not None:
                answers[event_id] = False
            elif owner == self._owner:
                answers[event_id] = True
            else:
                unqueued[event_id] = owner
        live = store.live({owner for owner in unqueued.values() if owner})
        for event_id, owner in unqueued.items():
            answers[event_id] = None if owner in live else store.execute(
                "UPDATE callbacks SET recorded_by = ? WHERE event_id = ? AND queued_at IS NULL AND coalesce(recorded_by, '') = ?",
                (self._owner, event_id, owner or "")) == 1 or None
        return answers

    def close(self):
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


def _event_text(event):
    """The stored form of ``event``: JSON without its identity and empty fields."""
    return _EVENT_JSON({name: value for name, value in event.items() if value is not None and name != "event_id"})


def copy_deliveries(source, destination, check_mode=False):
    """Copy the callbacks and delivery states of the Ledger ``source`` into the Ledger ``destination`` (or, in check
    mode, count what would be copied): each callback it lacks, and each device's state merged by the forward-only
    rule, as if the callbacks had come to it. Returns (callbacks read, callbacks copied)."""
    with source.store.transaction():
        callbacks = source.store.rows("SELECT event_id, type, account, request_id, event, received_at, queued_at FROM callbacks")
        deliveries = source.store.rows("SELECT request_id, device, state, aliases, updated_at FROM deliveries")
    present = {row[0] for row in destination.store.rows("SELECT event_id FROM callbacks")}
    missing = [row for row in callbacks if row[0] not in present]
    if check_mode or not missing:
        return len(callbacks), len(missing)
    with destination.store.transaction():
        destination.store.executemany("INSERT INTO callbacks (event_id, type, account, request_id, event, received_at, queued_at) "
                                      "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING", missing)
        destination.store.executemany(_UPSERT_DELIVERY, deliveries)
    return len(callbacks), len(missing)


# --- reading ------------------------------------------------------------------------------------------------


class _Request:
    """The devices the callbacks of one request named: rows that share an identifier are one device. ``groups``: one dict
    per device (``device``, ``state``, ``at``: the time of its first final state, ``aliases``); ``find`` the device an
    identifier names."""

    def __init__(self, rows):
        self.devices_requested = None
        # Most requests name each device in one row (the "sent" callback and the confirmations of its MDN): read as they
        # are, each row a device, without joining rows identifier by identifier.
        self.groups = _single_groups(rows)
        self._by_alias = self._by_device = None
        if self.groups is None:
            self.groups = _joined_groups(rows)
            self._by_alias, self._by_device = _by_alias(self.groups), {}
        else:  # each device is one of its row's identifiers: most lookups end here
            self._by_device = {group["device"]: group for group in self.groups}

    def find(self, alias):
        """The device (its group) ``alias`` (a ledger target) names, or None."""
        group = self._by_device.get(alias)
        if group is None:
            if self._by_alias is None:
                self._by_alias = _by_alias(self.groups)
            group = self._by_alias.get(alias)
        return group


def _by_alias(groups):
    return {alias: group for group in groups for alias in group["aliases"]}


def _single_groups(rows):
    """The groups of ``rows`` (device, state, aliases as stored, updated_at) when no identifier is in two rows and each row
    lists its own device (the ``aliases`` text of every row decoded in one call); None otherwise."""
    aliases = json.loads("[%s]" % ",".join(row[2] for row in rows))
    if len(set(chain.from_iterable(aliases))) != sum(map(len, aliases)) or not all(row[0] in listed for row, listed in zip(rows, aliases)):
        return None
    return [{"device": device, "state": state, "at": math.inf if state == SENT_TO_DEVICE else updated_at, "aliases": listed}
            for (device, state, _text, updated_at), listed in zip(rows, aliases)]


def _joined_groups(rows):
    """The groups of ``rows`` (device, state, aliases as stored, updated_at): rows that share an identifier joined, unless
    they name different MDNs (an MDN is one line: two of them are two devices, whatever else their rows share)."""
    parent, lines = {}, {}

    def root(alias):
        while parent.setdefault(alias, alias) != alias:
            parent[alias] = parent[parent[alias]]
            alias = parent[alias]
        return alias

    def join(alias, other):
        alias, other = root(alias), root(other)
        if alias != other and not (lines.get(alias) and lines.get(other) and lines[alias] != lines[other]):
            parent[other] = alias
            lines[alias] = lines.get(alias) or lines.get(other)

    rows = [(device, state, json.loads(aliases), updated_at) for device, state, aliases, updated_at in rows]
    for device, _state, aliases, _updated_at in rows:
        group = root(device)
        lines[group] = lines.get(group) or min((alias for alias in aliases if alias.startswith("mdn:")), default=None)
        for alias in aliases:
            join(device, alias)
    groups = {}
    for device, state, aliases, updated_at in rows:
        key = root(device)
        group = groups.setdefault(key, {"device": device, "state": SENT_TO_DEVICE, "at": math.inf, "aliases": set()})
        group["aliases"].update(alias for alias in aliases if root(alias) == key)
        group["device"] = min(group["device"], device, key=_key_rank)
        # A device named twice (its MDN by one callback, its MSISDN by another) takes its first final state.
        if state != SENT_TO_DEVICE and updated_at < group["at"]:
            group.update(state=state, at=updated_at)
    return list(groups.values())


def _key_rank(device):
    """The order in which a device's identifiers name it: by DEVICE_KEY_ORDER, then as strings."""
    kind = device.split(":", 1)[0]
    return (DEVICE_KEY_ORDER.index(kind) if kind in DEVICE_KEY_ORDER else len(DEVICE_KEY_ORDER), device)


def _requests(store, request_ids):
    """request id → _Request, for ``request_ids``."""
    rows = {}
    for among, values in store.among(request_ids):
        for row in store.rows("SELECT request_id, device, state, aliases, updated_at FROM deliveries WHERE request_id " + among, values):
            rows.setdefault(row[0], []).append(row[1:])
    found = {request_id: _Request(rows.get(request_id, [])) for request_id in request_ids}
    for request_id, requested in _devices_requested(store, request_ids).items():
        found[request_id].devices_requested = requested
    return found


def _devices_requested(store, request_ids):
    """request id → the devices its Request Complete callback counted, for those of ``request_ids`` that had it."""
    found = {}
    for among, values in store.among(request_ids):
        for request_id, event in store.rows("SELECT request_id, event FROM callbacks WHERE type = 'request_complete' AND request_id " + among, values):
            found[request_id] = json.loads(event).get("devices_requested")
    return found


# How a key's report files a target, from its sends row (s) and the delivery row keyed by the target itself (d): a
# refused target not at all (nothing was sent to it).
_FILED_AS = ("CASE WHEN s.state = 'refused' THEN NULL WHEN s.state <> 'sent' OR s.request_id IS NULL THEN '%s' ELSE coalesce(d.state, '%s') END"
             % (UNCONFIRMED, ACCEPTED))
_KEY_DEVICES = "FROM sends s LEFT JOIN deliveries d ON d.request_id = s.request_id AND d.device = s.target WHERE s.key_id = ?"
# A delivery row keyed by the one MDN among its identifiers, which it lists (as the recorder writes it; a row read
# otherwise is only not counted by the store: LIKE ignores case in SQLite), and its parameter (psycopg reads % itself).
_BY_ITS_MDN = ("substr(device, 1, 4) = 'mdn:' AND replace(aliases, '\"' || device || '\"', '') <> aliases AND aliases NOT LIKE ?",
               ('%"mdn:%"mdn:%',))


def _report_by_mdn(ledger, scope, key, listed):
    """delivery_report of every target under ``key``, counted by the store, or None unless each target is an MDN and each
    delivery row of the key's requests is keyed by the one MDN it names (what the callbacks leave for a send by MDN):
    then a device is the row its target keys, no row is another's (an MDN is one line), and only the devices of the
    states in ``listed`` are read. The rows the targets key are checked as they are joined; the others, when there are
    any, in a read of their own."""
    key_id = ledger.stored_key(scope, key)
    if key_id is None:
        return None
    store = ledger.store
    by_mdn, by_mdn_args = _BY_ITS_MDN
    request_ids = sorted(row[0] for row in store.rows("SELECT DISTINCT request_id FROM sends WHERE key_id = ? AND request_id IS NOT NULL", (key_id,)))
    rows = sum(store.rows("SELECT count(*) FROM deliveries WHERE request_id " + among, values)[0][0] for among, values in store.among(request_ids))
    states, others = dict.fromkeys(REPORT_STATES, 0), 0
    for filed, count, not_by_mdn in store.rows(
            "SELECT filed, count(*), count(CASE WHEN substr(target, 1, 4) <> 'mdn:' OR (device IS NOT NULL AND NOT (%s)) THEN 1 END) "
            "FROM (SELECT s.target, d.device, d.aliases, %s AS filed %s) t GROUP BY filed" % (by_mdn, _FILED_AS, _KEY_DEVICES), (*by_mdn_args, key_id)):
        others += not_by_mdn
        if filed is not None:
            states[filed] = count
    matched = sum(states[state] for state in (*FINAL_STATES, SENT_TO_DEVICE))
    if others or (rows != matched and any(store.rows("SELECT 1 FROM deliveries WHERE request_id %s AND NOT (%s) LIMIT 1" % (among, by_mdn),
                                                     (*values, *by_mdn_args)) for among, values in store.among(request_ids))):
        return None
    devices = {state: [] for state in REPORT_STATES}
    if listed:
        for target, state in store.rows("SELECT target, filed FROM (SELECT s.target, %s AS filed %s) t WHERE filed IN (%s)"
                                        % (_FILED_AS, _KEY_DEVICES, ", ".join("?" * len(listed))), (key_id, *listed)):
            devices[state].append(device_of(target))
    requested = _devices_requested(store, request_ids)
    return _report(devices, states, listed, requests=[{"request_id": request_id, "devices_requested": requested.get(request_id)} for request_id in request_ids],
                   total_known=True, devices_unmatched=rows - matched)


def _report(devices, states, listed, **found):
    """delivery_report's dict: ``devices`` of the states in ``listed``, sorted; ``states``, their ``total``; ``found``."""
    for listed_devices in devices.values():
        listed_devices.sort(key=lambda device: (device["kind"], device["id"]))
    return dict(found, devices={state: devices[state] for state in REPORT_STATES if state in listed}, states=states, total=sum(states.values()))


def delivery_report(ledger, scope=None, key=None, request_ids=(), targets=None, listed=REPORT_STATES):
    """The delivery state of each target recorded under ``key`` (limited to ``targets`` when given) and of each device
    the callbacks of ``request_ids`` named, in ``ledger`` (a Ledger). A dict:

    ``devices``: state → the devices in it (``{kind, id}``, sorted), for each state of ``listed`` (of REPORT_STATES); a
    target the ledger records by an identifier no callback named is matched through the identifiers the ``sent``
    callback lists; ``states``: state → how many (``accepted`` also counts the devices of a whole request, per its
    Request Complete callback, that no callback named yet); ``total``; ``total_known``: False while a whole request
    (``request_ids``, a selection) lacks its Request Complete callback, so more of its devices may come; ``requests``:
    ``[{request_id, devices_requested}]`` (the count of the Request Complete callback, None before it came);
    ``devices_unmatched``: devices the callbacks of a key's device requests named that match none of its targets
    (without the ``sent`` callbacks, a confirmation naming an MDN cannot be matched to a device sent to by ICCID)."""
    if key is not None and not request_ids and targets is None:
        found = _report_by_mdn(ledger, scope, key, listed)
        if found is not None:
            return found
    sends = ledger.sends(scope, key) if key is not None else {}
    if targets is not None:
        wanted = set(targets)
        sends = {target: value for target, value in sends.items() if target in wanted}
    whole = list(dict.fromkeys(list(request_ids) + [request_id for target, (_state, request_id) in sends.items() if target == SELECTION and request_id]))
    every = list(dict.fromkeys(whole + [request_id for _state, request_id in sends.values() if request_id]))
    requests = _requests(ledger.store, every)
    states = dict.fromkeys(REPORT_STATES, 0)
    devices = {state: [] for state in listed}

    def add(state, target):
        states[state] += 1
        if state in devices:
            devices[state].append({"kind": SELECTION, "id": key} if target == SELECTION else device_of(target))

    matched = set()
    for target, (state, request_id) in sends.items():
        if state == REFUSED:  # ThingSpace refused the device as not in the account: nothing was sent to it
            continue
        if state != SENT or not request_id:
            add(UNCONFIRMED, target)
            continue
        if target == SELECTION:
            continue
        group = requests[request_id].find(target)
        add(group["state"] if group else ACCEPTED, target)
        if group:
            matched.add(id(group))
    unmatched = 0
    for request_id in every:
        request = requests[request_id]
        for group in request.groups:
            if request_id in whole:
                add(group["state"], group["device"])
            elif id(group) not in matched:
                unmatched += 1
    # Devices of a whole request that no callback named yet are counted, not listed: only ThingSpace knows them.
    states[ACCEPTED] += sum(max(0, requests[request_id].devices_requested - len(requests[request_id].groups))
                            for request_id in whole if requests[request_id].devices_requested is not None)
    return _report(devices, states, listed, total_known=all(requests[request_id].devices_requested is not None for request_id in whole),
                   requests=[{"request_id": request_id, "devices_requested": requests[request_id].devices_requested} for request_id in every],
                   devices_unmatched=unmatched)


def delivery_states(ledger, sends):
    """What the callbacks say of each device of ``sends`` ({target: request id}): {target: (state, time of its first final
    state or None, the identifiers the callbacks list for it)}; a device no callback named yet is left out."""
    requests = _requests(ledger.store, list(dict.fromkeys(sends.values())))
    found = {}
    for target, request_id in sends.items():
        group = requests[request_id].find(target)
        if group:
            found[target] = (group["state"], None if group["at"] == math.inf else group["at"], sorted(group["aliases"]))
    return found


def device_history(ledger, targets, since=None, until=None):
    """Every send ``ledger`` holds for the devices ``targets`` (ledger targets), under any key and scope, recorded between
    ``since`` and ``until``, oldest first: ``{device, recorded_as, api_url, idempotency_key, state, request_id, at,
    delivery}``. A device is also found by the other identifiers its callbacks listed with it (``aliases``); unconfirmed
    sends the callbacks explain (``Ledger.resolve_unconfirmed``) read as sent."""
    asked = {}
    for target in targets:
        asked.setdefault(target, target)
        pattern = "%%%s%%" % json.dumps(target)
        for (aliases,) in ledger.store.rows("SELECT aliases FROM deliveries WHERE aliases LIKE ?", (pattern,)):
            for alias in json.loads(aliases):
                asked.setdefault(alias, target)
    records = ledger.device_records(list(asked), since, until)
    settled = {}
    for scope, key in {(scope, key) for scope, key, _target, state, _request_id, _at in records if state in (PENDING, UNKNOWN)}:
        settled.update(((scope, key, target), request_id) for target, request_id in ledger.resolve_unconfirmed(scope, key).items())
    found = []
    for scope, key, target, state, request_id, at in records:
        if (scope, key, target) in settled:
            state, request_id = SENT, settled[scope, key, target]
        found.append({"device": device_of(asked[target]), "recorded_as": device_of(target), "api_url": scope, "idempotency_key": key,
                      "state": state, "request_id": request_id, "at": iso_time(at), "delivery": None})
    requests = _requests(ledger.store, list(dict.fromkeys(entry["request_id"] for entry in found if entry["state"] == SENT and entry["request_id"])))
    for entry, (_scope, _key, target, _state, _request_id, _at) in zip(found, records):
        if entry["state"] == SENT and entry["request_id"]:
            group = requests[entry["request_id"]].find(target)
            entry["delivery"] = group["state"] if group else ACCEPTED
    return found


def share(value, total, option, example="10%"):
    """How many of ``total`` ``value`` names: a count (``10``) or a percentage (``"10%"``, rounded up, so 1 % of 50 is 1);
    ValueError naming ``option`` for anything else."""
    text = str(value).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 < percent <= 100:
                raise ValueError
            return math.ceil(total * percent / 100 - 1e-9)
        count = int(text)
        if count < 1:
            raise ValueError
        return count
    except ValueError:
        raise ValueError("%s: %r is neither a count of 1 or more nor a percentage such as %s (more than 0, at most 100)" % (option, value, example))


def required_delivered(min_delivered, total):
    """How many devices of ``total`` must be Delivered for ``min_delivered`` (a count such as ``"10"`` or a percentage
    such as ``"95%"``); ValueError naming the option for another value."""
    return share(min_delivered, total, "min_delivered", "95%")


def wait_for_delivery(ledger, scope, key, targets, min_delivered, timeout, interval=1.0, clock=time.monotonic, sleep=time.sleep):
    """Read the delivery report of ``targets`` under ``key`` until ``min_delivered`` of them are Delivered; (report,
    failure message or None). It fails at ``timeout`` seconds, and at once when the devices still waiting for a
    callback could not make up the count. It never sends."""
    deadline = clock() + timeout
    # A percentage of a selection needs its size, which its Request Complete callback tells.
    sized = not str(min_delivered).strip().endswith("%")
    while True:
        report = delivery_report(ledger, scope, key, targets=targets)
        states = report["states"]
        required = max(1, required_delivered(min_delivered, report["total"]))
        waiting = states[SENT_TO_DEVICE] + states[ACCEPTED]
        known = sized or report["total_known"]
        if states[DELIVERED] >= required and known:
            return report, None
        summary = "%d of %d device(s) Delivered, %d needed (min_delivered %s)" % (states[DELIVERED], report["total"], required, min_delivered)
        if states[DELIVERED] + waiting < required and known:
            return report, "Delivery wait: %s, and only %d more await a delivery callback; %s" % (summary, waiting, _not_delivered(report))
        now = clock()
        if now >= deadline:
            return report, "Delivery wait timed out after %g s: %s; %s" % (timeout, summary, _not_delivered(report))
        sleep(min(interval, deadline - now))


def _not_delivered(report):
    states = report["states"]
    listed = ", ".join("%d %s" % (states[state], state) for state in REPORT_STATES if state != DELIVERED and states[state])
    text = "not delivered: %s (devices_undelivered lists them)" % (listed or "none")
    if report["devices_unmatched"]:
        text += ("; %d device(s) named by callbacks match none of the send's devices: register EnhancedConnectivityService too, whose "
                 "callbacks list each identifier of a device" % report["devices_unmatched"])
    elif not any(states[state] for state in (*FINAL_STATES, SENT_TO_DEVICE)):
        text += ("; no callback of these requests is recorded in the ledger: is the event source thingspace.m2m.callbacks running with "
                 "this ledger, and registered for EnhancedConnectivityService and SMSDeliveryConfirmation?")
    return text


def undelivered(report):
    """The devices of ``report`` not Delivered, each ``{kind, id, state}``."""
    return [dict(device, state=state) for state in REPORT_STATES if state != DELIVERED for device in report["devices"][state]]
