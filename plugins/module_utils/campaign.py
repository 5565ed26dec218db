# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staged SMS campaigns (docs/design.md, "Campaigns"): one message to a frozen selection in waves, each started when
the previous wave's gate passes, paced, and stopped for good when an abort criterion is met.

A campaign is a state machine in the ledger's store (tables ``campaigns`` and ``campaign_devices``, schema 5, keyed by
position since schema 9, and ``campaign_counts``, schema 7).
``step`` is the whole of it: load (or create) the campaign, bring each device's state forward from what the ledger
holds (sends, delivery callbacks, replies, timeouts), decide abort and gate, send what is due, return the figures.
Every decision is recomputed from the store, so any controller may take the next step. Sends go through
``send.SmsSend`` under the campaign's name as idempotency key: the claim protocol makes each device's SMS at most
once, whoever sends it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import Counter
from datetime import datetime

from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import delivery_states, share
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import IN_FLIGHT, PENDING, REFUSED, SENT, UNKNOWN, iso_time
from ansible_collections.thingspace.m2m.plugins.module_utils.send import (
    PREVIEW_LIMIT,
    TRACK_DEVICE,
    UNKNOWN_FAIL,
    UNKNOWN_SKIP,
    SendPlan,
    SmsSend,
    device_of,
    plan_send,
    target_of,
)
from ansible_collections.thingspace.m2m.plugins.module_utils.sms import MAX_DEVICES_PER_REQUEST, Devices, message_size

# Campaign states; the last two are final.
RUNNING, WAITING, PAUSED, COMPLETED, ABORTED = "running", "waiting", "paused", "completed", "aborted"
FINAL = (COMPLETED, ABORTED)
# What the option ``state`` asks for.
STARTED = "started"
# Device states and their rank: a device's state is only ever replaced by one of a higher rank.
RANKS = {"pending": 0, "unconfirmed": 1, "sent": 2, "delivered": 3,
         "replied": 4, "reply_error": 4, "undelivered": 4, "expired": 4, "rejected": 4, "timed_out": 4, "refused": 4, "skipped": 4}
DEVICE_STATES = tuple(RANKS)
FAILURES = ("undelivered", "expired", "rejected", "timed_out", "reply_error", "refused")
# A device left out by skip_inactive: neither a success nor a failure, and not one of its wave's devices for the gate.
SKIPPED = "skipped"
# The final states of devices that got no SMS: ThingSpace refused them (not in the account), or skip_inactive left them out.
NOT_SENT = ("refused", SKIPPED)
ANY = "any"
# What an abort criterion's ``failure`` may be.
FAILURE_CHOICES = (*FAILURES, ANY)
SUCCESS_DELIVERED, SUCCESS_REPLIED = "delivered", "replied"
# What counts as success under each ``success``: a device replying is evidence of delivery.
SUCCESSES = {SUCCESS_DELIVERED: ("delivered", "replied"), SUCCESS_REPLIED: ("replied",)}
_FROM_DELIVERY = {"Delivered": "delivered", "Undelivered": "undelivered", "Expired": "expired", "Rejected": "rejected"}
# Seconds of pace one batch carries: at most max_per_minute / 6 devices, so batches are spread over each minute.
PACE_SLICE = 10
# Seconds between two readings of the ledger while ``wait: gate`` waits.
GATE_INTERVAL = 2.0
# Seconds a step waits at most for the batches another controller is sending right now (so that it reports their
# outcome), and between two readings meanwhile.
IN_FLIGHT_WAIT, IN_FLIGHT_INTERVAL = 60.0, 0.2
# The options frozen when the campaign is created; another value later fails, naming the difference.
FROZEN = ("account_name", "message", "data_encoding", "selection", "waves", "success", "reply_pattern", "reply_error_pattern")
# The options of the campaign's policy: recorded, and replaced by a step that gives other values.
POLICY = ("success_threshold", "wave_timeout", "abort", "max_per_minute", "skip_inactive")
DEFAULT_POLICY = {"success_threshold": "100%", "wave_timeout": None, "abort": [], "max_per_minute": None, "skip_inactive": False}
DEFAULT_DEFINITION = {"waves": ["100%"], "success": SUCCESS_DELIVERED, "reply_pattern": None, "reply_error_pattern": None}
_COLUMNS = "target, position, wave, state, request_id, sent_at, finished_at"
# Targets hashed at a time (the frozen selection's digest).
_HASHED = 500


# --- arithmetic ---------------------------------------------------------------------------------------------


def wave_ends(waves, total):
    """The cumulative device count each wave reaches (``waves``: counts and percentages of ``total``); the last must be
    ``total``. A wave that adds no device is kept (its gate passes at once)."""
    if not waves:
        raise ValueError("waves: give at least one wave, such as [\"100%\"]")
    ends, reached = [], 0
    for index, value in enumerate(waves):
        reached = min(total, max(reached, share(value, total, "waves[%d]" % index)))
        ends.append(reached)
    if reached < total:
        raise ValueError("waves: the last wave reaches %d of the selection's %d devices; end the list with \"100%%\" so that no device is left "
                         "out" % (reached, total))
    return ends


def ordered(name, targets):
    """``targets`` in the campaign's order: by SHA-256 of the name and the target, a stable pseudo-random sample (the
    digest's bytes sort as its hexadecimal text, in half the memory)."""
    return sorted(targets, key=lambda target: hashlib.sha256(("%s\0%s" % (name, target)).encode("utf-8")).digest())


def batch_limit(max_per_minute):
    """Devices per request: PACE_SLICE seconds of the pace, at least 1, at most the API's 10,000."""
    if max_per_minute is None:
        return MAX_DEVICES_PER_REQUEST
    return max(1, min(MAX_DEVICES_PER_REQUEST, max_per_minute * PACE_SLICE // 60))


def pace(next_send_at, now, devices, max_per_minute):
    """(whether a batch of ``devices`` may go at ``now``, the next_send_at after it). Idle time earns no credit."""
    if max_per_minute is None:
        return True, next_send_at
    if now < next_send_at:
        return False, next_send_at
    return True, max(now, next_send_at) + 60.0 * devices / max_per_minute


def gate(counts, threshold, success):
    """The gate of a wave whose devices are in the states ``counts`` gives (state → how many): (``passed`` | ``failed`` |
    ``open``, needed, succeeded). It passes when the wave is sent and enough devices succeeded, and fails when too few
    could still succeed."""
    total = sum(counts.values()) - counts.get(SKIPPED, 0)
    needed = share(threshold, total, "success_threshold") if total else 0
    succeeded = sum(count for state, count in counts.items() if state in SUCCESSES[success])
    unfinished = sum(count for state, count in counts.items() if not finished(state, success))  # skipped devices are finished
    if succeeded >= needed and not counts.get("pending"):
        return "passed", needed, succeeded
    if succeeded + unfinished < needed:
        return "failed", needed, succeeded
    return "open", needed, succeeded


def finished(state, success):
    """Whether a device in ``state`` has its outcome under ``success``."""
    return RANKS[state] == 4 or (state == "delivered" and success == SUCCESS_DELIVERED)


def moving(success):
    """The device states a step reads devices in (load, whole=False): those whose device may still move under
    ``success``; a delivered device is read when a reply names it (_replies)."""
    return tuple(state for state in DEVICE_STATES if not finished(state, success))


def crossing(criteria, outcomes):
    """The first abort criterion met over ``outcomes`` (the finished devices' (target, state) in the order they
    finished), and where: (criterion, index of the device that crosses it, finished, failed), or None. A criterion is
    met at the device where the share of its failure among the devices finished so far reaches its threshold, once at
    least min_devices have finished."""
    first = None
    for criterion in criteria:
        kinds = FAILURES if criterion["failure"] == ANY else (criterion["failure"],)
        failed = 0
        for index, (_target, state) in enumerate(outcomes):
            failed += state in kinds
            count = index + 1
            if count >= criterion["min_devices"] and failed and failed >= share(criterion["threshold"], count, "abort threshold"):
                if first is None or index < first[1]:
                    first = (criterion, index, count, failed)
                break
    return first


def check_abort(criteria):
    """The ``abort`` option's criteria in one form: ``{failure, threshold, min_devices}``; ValueError naming the entry."""
    checked = []
    for index, entry in enumerate(criteria or []):
        where = "abort[%d]" % index
        if not isinstance(entry, dict) or set(entry) - {"failure", "threshold", "min_devices"} or "failure" not in entry:
            raise ValueError("%s: give {failure, threshold, min_devices}, failure one of %s" % (where, ", ".join(FAILURE_CHOICES)))
        if entry["failure"] not in FAILURE_CHOICES:
            raise ValueError("%s.failure: %r is not one of %s" % (where, entry["failure"], ", ".join(FAILURE_CHOICES)))
        threshold = str(entry.get("threshold", "100%")).strip()
        if not threshold.endswith("%"):
            raise ValueError("%s.threshold: %r is not a percentage such as 10%%" % (where, entry.get("threshold")))
        share(threshold, 100, where + ".threshold")
        min_devices = entry.get("min_devices", 1)
        if not isinstance(min_devices, int) or isinstance(min_devices, bool) or min_devices < 1:
            raise ValueError("%s.min_devices: %r is not a count of 1 or more" % (where, min_devices))
        checked.append({"failure": entry["failure"], "threshold": threshold, "min_devices": min_devices})
    return checked


def _reply_time(event, received_at):
    """When a device SMS was sent: the earlier of ThingSpace's timestamp (when it has a zone) and its record time."""
    stamp = event.get("sent_at")
    if stamp:
        try:
            at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            at = None
        if at is not None and at.tzinfo is not None:
            return min(at.timestamp(), received_at)
    return received_at


# --- the store ----------------------------------------------------------------------------------------------


class Device:
    """One device of a campaign as the store holds it; ``dirty`` once this step moved it forward, from ``stored`` (the
    state the store held when it was read or last written), and then in ``moved`` (its campaign's list)."""

    __slots__ = ("dirty", "finished_at", "moved", "position", "request_id", "sent_at", "state", "stored", "target", "wave")

    def __init__(self, target, position, wave, state, request_id, sent_at, finished_at):
        self.target = target
        self.position = position
        self.wave = wave
        self.state = state
        self.request_id = request_id
        self.sent_at = sent_at
        self.finished_at = finished_at
        self.stored = state
        self.dirty = False
        self.moved = None

    def advance(self, state, request_id=None, sent_at=None, finished_at=None):
        """Move forward to ``state`` (nothing when it is not of a higher rank)."""
        if RANKS[state] <= RANKS[self.state]:
            return
        if not self.dirty:
            self.moved.append(self)
        self.state, self.dirty = state, True
        self.request_id = request_id or self.request_id
        self.sent_at = self.sent_at if self.sent_at is not None else sent_at
        if RANKS[state] >= 3:
            self.finished_at = finished_at


class Campaign:
    """A campaign row and its devices, as read from the store (or, in check mode, as creating it would write them).
    ``devices`` are all its devices, or (``load`` with whole=False) those of the waves up to ``held`` that may still
    move, in order (a later wave's are read when it becomes current: ``hold``). ``counts`` are the store's counts of
    every device: wave → state → [devices, first sent_at, last sent_at] (``campaign_counts``); ``moved`` the devices this
    step moved forward and has not written yet, which ``states`` adds to them."""

    def __init__(self, row, devices, counts=None, store=None):
        (self.id, self.scope, self.name, self.account, definition, policy, self.devices_total, waves, self.state, self.wave, abort_reason,
         self.next_send_at, self.created_at) = row
        self.definition, self.policy, self.ends = json.loads(definition), dict(DEFAULT_POLICY, **json.loads(policy)), json.loads(waves)
        self.abort_reason = json.loads(abort_reason) if abort_reason else None
        self.devices, self.by_target, self._waves, self.moved = [], {}, {}, []
        self.held_pending = Counter()  # wave → the devices held whose stored state is pending
        self.counts = _tally(devices) if counts is None else counts
        self._store = store  # where the devices not held are read, when needed (a campaign read in part)
        self.held = self.wave if store is not None else len(self.ends)
        self.synced = False  # whether observe read every send of the campaign since its devices were read
        self._outcomes = None
        self.add(devices)
        self.saved_state, self.saved_wave = self.state, self.wave
        self.in_flight = set()  # targets another controller is sending right now (observe)
        self.recorded = set()  # targets whose send a step found recorded, for observe to read

    @property
    def success(self):
        return self.definition["success"]

    def add(self, devices):
        """Hold ``devices`` (read from the store) one by one, the campaign's order kept."""
        for device in devices:
            device.moved = self.moved
            self.held_pending[device.wave] += device.stored == "pending"
            self.by_target[device.target] = device
            self._waves.setdefault(device.wave, []).append(device)
        self.devices.extend(devices)
        if self._store is not None:
            self.devices.sort(key=lambda device: device.position)
            for listed in self._waves.values():
                listed.sort(key=lambda device: device.position)

    def stored(self, device, state):
        """Note that the store holds ``device`` in ``state`` now."""
        self.held_pending[device.wave] += (state == "pending") - (device.stored == "pending")
        device.stored = state

    def wave_devices(self, wave):
        """The devices of ``wave`` the campaign holds one by one."""
        return self._waves.get(wave, [])

    def states(self, wave=None):
        """state → how many devices (of ``wave``, else of the campaign) are in it: the store's counts, and what this step
        moved since."""
        counts = Counter()
        for number, states in self.counts.items():
            if wave is None or number == wave:
                counts.update({state: entry[0] for state, entry in states.items()})
        for device in self.moved:
            if wave is None or device.wave == wave:
                counts[device.stored] -= 1
                counts[device.state] += 1
        return counts

    def outcomes(self):
        """The finished devices as (finished_at or inf, position, target, state, wave), in the order they finished."""
        if self._outcomes is None:
            self._outcomes = {}
            if self._store is not None:
                rows = self._store.rows("SELECT target, position, state, finished_at, wave FROM campaign_devices WHERE campaign_id = ? AND state NOT IN "
                                        "(%s)" % _listed(moving(self.success)), (self.id,))
                self._outcomes = {row[0]: (math.inf if row[3] is None else row[3], row[1], row[0], row[2], row[4]) for row in rows}
        found = dict(self._outcomes)
        found.update((device.target, (math.inf if device.finished_at is None else device.finished_at, device.position, device.target, device.state,
                                      device.wave)) for device in self.devices if finished(device.state, self.success))
        return sorted(found.values())


def _tally(devices):
    """The counts of ``devices`` as the store holds them: wave → state → [devices, first sent_at, last sent_at]."""
    counts = {}
    for device in devices:
        entry = counts.setdefault(device.wave, {}).setdefault(device.stored, [0, None, None])
        entry[0] += 1
        if device.sent_at is not None:
            entry[1] = device.sent_at if entry[1] is None else min(entry[1], device.sent_at)
            entry[2] = device.sent_at if entry[2] is None else max(entry[2], device.sent_at)
    return counts


def _counted(rows):
    """Rows (wave, state, devices, first sent_at, last sent_at) as Campaign.counts."""
    counts = {}
    for wave, state, devices, first, last in rows:
        counts.setdefault(wave, {})[state] = [devices, first, last]
    return counts


def _listed(states):
    return ", ".join("'%s'" % state for state in states)


_CAMPAIGN = ("SELECT id, scope, name, account, definition, policy, devices_total, waves, state, wave, abort_reason, next_send_at, created_at "
             "FROM campaigns WHERE scope = ? AND name = ?")


def load(ledger, scope, name, whole=True):
    """The campaign ``name`` of ``scope`` with its devices in order; None when the ledger has none. ``whole``: False reads
    one by one only the devices of the waves up to the current one that may still move (``moving``), and the counts of
    every device, in one statement (one snapshot)."""
    store = ledger.store
    rows = store.rows(_CAMPAIGN, (scope, name))
    if not rows:
        return None
    campaign_id, wave, ends = rows[0][0], rows[0][9], json.loads(rows[0][7])
    if whole:
        # Sorted here: on PostgreSQL an updated row has moved in the table, and a ledger of an older schema (read in check mode) is
        # keyed by target.
        found = store.rows("SELECT %s FROM campaign_devices WHERE campaign_id = ?" % _COLUMNS, (campaign_id,))
        found.sort(key=lambda row: row[1])
        return Campaign(rows[0], [Device(*row) for row in found])
    # The later waves' devices are all pending until their wave is current: they are counted, not read. Before the last wave, the
    # devices are one range of the table's key (positions below the current wave's end).
    held = "SELECT %s, NULL FROM campaign_devices WHERE campaign_id = ? AND state IN (%s)%s" % (
        _COLUMNS, _listed(moving(json.loads(rows[0][4])["success"])), " AND position < %d" % ends[wave - 1] if wave < len(ends) else "")
    found = store.rows(held + " UNION ALL SELECT NULL, NULL, wave, state, NULL, first_sent_at, last_sent_at, devices FROM campaign_counts WHERE "
                       "campaign_id = ?", (campaign_id, campaign_id))
    if not any(row[0] is None for row in found):  # a ledger of schema 5 or 6 in check mode: no counts yet, the devices are counted here
        found = store.rows(held + " UNION ALL SELECT NULL, NULL, wave, state, NULL, min(sent_at), max(sent_at), count(*) FROM campaign_devices WHERE "
                           "campaign_id = ? GROUP BY wave, state", (campaign_id, campaign_id))
    counts = _counted(row[2:4] + row[7:8] + row[5:7] for row in found if row[0] is None)
    devices = [Device(*row[:7]) for row in found if row[0] is not None]
    devices.sort(key=lambda device: device.position)
    return Campaign(rows[0], devices, counts, store)


def hold(ledger, campaign):
    """Hold one by one the devices of the waves up to the current one that ``campaign`` (read in part) does not hold yet,
    and bring forward those of a wave where the store counts fewer pending devices than the campaign holds as pending
    (another controller sent them): every device of such a wave is read again, its stored state taken when further."""
    new = list(range(campaign.held + 1, campaign.wave + 1))
    waves = [wave for wave in range(1, campaign.held + 1) if campaign.counts.get(wave, {}).get("pending", [0])[0] < campaign.held_pending[wave]] + new
    if not waves:
        return
    ends, added = [0, *campaign.ends], []
    states = moving(campaign.success)
    for wave in waves:
        for row in ledger.store.rows("SELECT %s FROM campaign_devices WHERE campaign_id = ? AND position >= ? AND position < ?" % _COLUMNS,
                                     (campaign.id, ends[wave - 1], ends[wave])):
            device = campaign.by_target.get(row[0])
            if device is None:
                if row[3] in states:
                    added.append(Device(*row))
                continue
            campaign.stored(device, row[3])
            if RANKS[row[3]] >= RANKS[device.state]:
                device.state, device.request_id, device.sent_at, device.finished_at = row[3:7]
    campaign.add(added)
    if new:
        campaign.held, campaign.synced = campaign.wave, False


def names(ledger, scope):
    """The names of the campaigns of ``scope``, oldest first."""
    return [row[0] for row in ledger.store.rows("SELECT name FROM campaigns WHERE scope = ? ORDER BY created_at, id", (scope,))]


def _create(ledger, scope, name, account, definition, policy, targets, now, check_mode):
    """Write a new campaign with its devices pending (in check mode, only build it); the campaign as stored, which
    is another controller's when it created the same campaign first."""
    ends = wave_ends(definition["waves"], len(targets))
    # The kinds of identifier the devices are held by: a reply naming one of each is matched by them alone (_delivered).
    definition = dict(definition, kinds=sorted({target.split(":", 1)[0] for target in targets}))
    devices, wave = [], 1
    for position, target in enumerate(ordered(name, targets)):
        while position >= ends[wave - 1]:
            wave += 1
        devices.append(Device(target, position, wave, "pending", None, None, None))
    row = (None, scope, name, account, json.dumps(definition, sort_keys=True), json.dumps(policy, sort_keys=True), len(targets), json.dumps(ends),
           RUNNING, 1, None, 0.0, now)
    if check_mode:
        return Campaign(row, devices)
    store = ledger.store
    with store.transaction():
        created = store.execute("INSERT INTO campaigns (scope, name, account, definition, policy, devices_total, waves, state, wave, next_send_at, "
                                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, name) DO NOTHING",
                                (scope, name, account, row[4], row[5], len(targets), row[7], RUNNING, 1, 0.0, now, now))
        campaign_id = store.rows("SELECT id FROM campaigns WHERE scope = ? AND name = ?", (scope, name))[0][0]
        if created:
            # In position order, the table's key: each page is written once, and a batch's rows are neighbours.
            store.insert_devices(campaign_id, [(device.target, device.position, device.wave) for device in devices])
            store.executemany("INSERT INTO campaign_counts (campaign_id, wave, state, devices) VALUES (?, ?, 'pending', ?)",
                              [(campaign_id, wave, states["pending"][0]) for wave, states in sorted(_tally(devices).items())])
    if not created:
        return load(ledger, scope, name)  # another controller's
    return Campaign((campaign_id, *row[1:]), devices)


def _save(ledger, campaign, now, deciding=False):
    """Write what this step moved forward, in one transaction: devices by rank (a device another controller moved as far or
    further takes the store's state), and with them the counts, read back; with ``deciding``, the campaign's state is
    decided from those counts (``decide``) before it is written. Then the campaign's state (a final state stays;
    running/waiting never replace paused), its wave (only up) and abort reason."""
    with ledger.store.transaction():
        _write_devices(ledger.store, campaign)
        if deciding:
            decide(campaign)
        _write_campaign(ledger.store, campaign, now)


# A count moved by a write: devices added, the first and last sent_at of those that entered the state kept.
_ADD_COUNT = ("INSERT INTO campaign_counts (campaign_id, wave, state, devices, first_sent_at, last_sent_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
              "(campaign_id, wave, state) DO UPDATE SET devices = campaign_counts.devices + excluded.devices, first_sent_at = CASE WHEN "
              "campaign_counts.first_sent_at <= excluded.first_sent_at OR excluded.first_sent_at IS NULL THEN campaign_counts.first_sent_at ELSE "
              "excluded.first_sent_at END, last_sent_at = CASE WHEN campaign_counts.last_sent_at >= excluded.last_sent_at OR excluded.last_sent_at IS "
              "NULL THEN campaign_counts.last_sent_at ELSE excluded.last_sent_at END")
_COUNTS = "SELECT wave, state, devices, first_sent_at, last_sent_at FROM campaign_counts WHERE campaign_id = ?"


def _write_devices(store, campaign):
    """The devices' part of _save, inside the caller's transaction, with the campaign's row locked first (on PostgreSQL;
    SQLite has one writer), so the states read here are the ones the writes replace and the counts move by exactly
    what was written. Devices that moved to the same values (a batch sent, the confirmations of one recording) are
    read and written together, by their positions (the table's key: a batch is one range of it), as few statements as
    ``store.among`` makes. Each statement also names the range its positions span: on PostgreSQL, a campaign created
    moments ago has no statistics yet, and the planner then scanned every device of the campaign against the list."""
    store.rows("SELECT id FROM campaigns WHERE id = ?" + store.FOR_UPDATE, (campaign.id,))
    moved, added = {}, {}
    for device in campaign.moved:
        moved.setdefault((device.state, device.request_id, device.sent_at, device.finished_at), {})[device.position] = device
    for (state, request_id, sent_at, finished_at), devices in moved.items():
        positions = sorted(devices)
        span = (positions[0], positions[-1])
        for among, some in store.among(positions):
            behind = []
            rows = store.rows("SELECT position, wave, state, request_id, sent_at, finished_at FROM campaign_devices WHERE campaign_id = ? AND position "
                              "BETWEEN ? AND ? AND position " + among, (campaign.id, *span, *some))
            for position, wave, stored, stored_request_id, stored_sent_at, stored_finished_at in rows:
                device = devices[position]
                if RANKS[stored] >= RANKS[state] or finished(stored, campaign.success):  # another controller moved it as far or finished it
                    device.state, device.request_id, device.sent_at, device.finished_at = stored, stored_request_id, stored_sent_at, stored_finished_at
                else:
                    behind.append(position)
                    _add(added, (wave, stored), -1, None)
                    _add(added, (wave, state), 1, stored_sent_at if stored_sent_at is not None else sent_at)
                campaign.stored(device, device.state)
            for among_behind, values in store.among(behind):
                store.execute("UPDATE campaign_devices SET state = ?, request_id = coalesce(?, request_id), sent_at = coalesce(sent_at, ?), finished_at = ? "
                              "WHERE campaign_id = ? AND position BETWEEN ? AND ? AND position " + among_behind,
                              (state, request_id, sent_at, finished_at, campaign.id, *span, *values))
    store.executemany(_ADD_COUNT, [(campaign.id, wave, state, *entry) for (wave, state), entry in sorted(added.items())])
    campaign.counts = _counted(store.rows(_COUNTS, (campaign.id,)))
    for device in campaign.moved:
        device.dirty = False
    del campaign.moved[:]


def _add(added, key, devices, sent_at):
    entry = added.setdefault(key, [0, sent_at, sent_at])
    entry[0] += devices
    if sent_at is not None:
        entry[1] = sent_at if entry[1] is None else min(entry[1], sent_at)
        entry[2] = sent_at if entry[2] is None else max(entry[2], sent_at)


def _write_campaign(store, campaign, now):
    """The campaign's part of _save, inside the caller's transaction."""
    allowed = {ABORTED: (RUNNING, WAITING, PAUSED), COMPLETED: (RUNNING, WAITING), PAUSED: (RUNNING, WAITING),
               RUNNING: (RUNNING, WAITING), WAITING: (RUNNING, WAITING)}[campaign.state]
    store.execute("UPDATE campaigns SET state = ?, wave = CASE WHEN wave < ? THEN ? ELSE wave END, abort_reason = coalesce(abort_reason, ?), "
                  "updated_at = ? WHERE id = ? AND state IN (%s)" % ", ".join("'%s'" % state for state in allowed),
                  (campaign.state, campaign.wave, campaign.wave, json.dumps(campaign.abort_reason) if campaign.abort_reason else None, now, campaign.id))


def _recount(store, campaign_id):
    """Count a campaign's devices again from its rows (a copy wrote them), inside the caller's transaction."""
    store.execute("DELETE FROM campaign_counts WHERE campaign_id = ?", (campaign_id,))
    store.execute("INSERT INTO campaign_counts SELECT campaign_id, wave, state, count(*), min(sent_at), max(sent_at) FROM campaign_devices "
                  "WHERE campaign_id = ? GROUP BY campaign_id, wave, state", (campaign_id,))


def _resume(ledger, campaign, now):
    with ledger.store.transaction():
        ledger.store.execute("UPDATE campaigns SET state = ?, updated_at = ? WHERE id = ? AND state = ?", (RUNNING, now, campaign.id, PAUSED))


def _reserve(ledger, campaign, devices, now):
    """Reserve the pace for a batch of ``devices`` in one transaction (the campaign's row locked); (may it go, when the
    next batch may)."""
    store = ledger.store
    with store.transaction():
        next_send_at = store.rows("SELECT next_send_at FROM campaigns WHERE id = ?" + store.FOR_UPDATE, (campaign.id,))[0][0]
        go, later = pace(next_send_at, now, devices, campaign.policy["max_per_minute"])
        if go:
            store.execute("UPDATE campaigns SET next_send_at = ? WHERE id = ?", (later, campaign.id))
    return go, later


# --- observing: the devices' states from the ledger ---------------------------------------------------------


def observe(ledger, campaign, now, claimed_at=None):
    """Bring each device forward from what the ledger holds: its send under the campaign's name (``claimed_at``:
    target → the claim time of a batch this step sent), its delivery callbacks, its replies, its wave's timeout.
    Events after a wave's timeout do not count, so the outcome does not depend on when the step runs. Only what can
    still move is read: the sends while a device is not sent, the deliveries of the devices sent and not confirmed."""
    claimed_at = claimed_at or {}
    if campaign.synced:
        # Within a step, only these can have a send this campaign does not hold yet: the batch just sent, the devices another
        # controller was sending, those unconfirmed, and those of a batch to send that the step found recorded (_advance).
        targets = set(claimed_at) | campaign.in_flight | campaign.recorded | {device.target for device in campaign.devices if device.state == "unconfirmed"}
        unsent = bool(targets)
    else:
        targets, unsent = None, any(RANKS[device.state] < 2 for device in campaign.devices)
    campaign.synced, campaign.recorded = True, set()
    if unsent:
        ledger.resolve_unconfirmed(campaign.scope, campaign.name)
        sends = ledger.send_rows(campaign.scope, campaign.name, targets)
        campaign.in_flight = {target for target, (state, _request_id, _at) in sends.items() if state == IN_FLIGHT}
        for target, (state, request_id, at) in sends.items():
            device = campaign.by_target.get(target)
            if device is None or RANKS[device.state] >= 2:
                continue
            at = claimed_at.get(target, at)
            if state == SENT:
                device.advance("sent", request_id, at)
            elif state in (PENDING, UNKNOWN):
                device.advance("unconfirmed", None, at)
            elif state == REFUSED:
                device.advance("refused", finished_at=at)
    deadlines = _deadlines(campaign)
    sent = {device.target: device.request_id for device in campaign.devices if device.state == "sent" and device.request_id}
    aliases = {}
    for target, (state, at, identifiers) in delivery_states(ledger, sent).items():
        device = campaign.by_target[target]
        aliases.update((alias, device) for alias in identifiers)
        if state in _FROM_DELIVERY and at is not None and at <= deadlines.get(device.wave, math.inf):
            device.advance(_FROM_DELIVERY[state], finished_at=at)
    _replies(ledger, campaign, aliases, deadlines)
    for wave, deadline in deadlines.items():
        if now >= deadline:
            for device in campaign.wave_devices(wave):
                if not finished(device.state, campaign.success):
                    device.advance("timed_out", finished_at=deadline)


def _deadlines(campaign):
    """wave → the time its unfinished devices time out: its last send + wave_timeout, once every device of it is sent."""
    timeout = campaign.policy["wave_timeout"]
    if timeout is None:
        return {}
    deadlines = {}
    for wave in range(1, len(campaign.ends) + 1):
        if campaign.states(wave)["pending"]:
            continue
        sent = [entry[2] for entry in campaign.counts.get(wave, {}).values() if entry[2] is not None]
        sent.extend(device.sent_at for device in campaign.moved if device.wave == wave and device.sent_at is not None)
        if sent:
            deadlines[wave] = max(sent) + timeout
    return deadlines


def _replies(ledger, campaign, aliases, deadlines):
    """Move devices to replied / reply_error by the device SMS the ledger holds: a reply counts for the most recent
    campaign send to its device (in any campaign of the scope) at or before it. ``aliases``: the other identifiers of
    the devices whose deliveries observe read; a reply naming none of those nor a waiting device's own identifier
    reads the identifiers of the delivered devices too (a reply confirms a delivered device under success: delivered)."""
    sent = [entry[1] for states in campaign.counts.values() for entry in states.values() if entry[1] is not None]
    sent.extend(device.sent_at for device in campaign.moved if device.sent_at is not None)
    if not sent or not ledger.store.rows("SELECT 1 FROM callbacks WHERE type = 'device_sms' AND received_at >= ? LIMIT 1", (min(sent),)):
        return  # no device SMS since the campaign's first send: nothing to read one by one
    waiting = {device.target: device for device in campaign.devices if RANKS[device.state] in (1, 2, 3) and device.sent_at is not None}
    delivered = [entry[1] for states in campaign.counts.values() for state, entry in states.items() if state == "delivered" and entry[0]]
    if not waiting and not delivered:
        return
    definition = campaign.definition
    error_pattern = re.compile(definition["reply_error_pattern"]) if definition["reply_error_pattern"] else None
    pattern = re.compile(definition["reply_pattern"]) if definition["reply_pattern"] else None
    since = min([device.sent_at for device in waiting.values()] + delivered)
    events = []
    for event, received_at in ledger.store.rows("SELECT event, received_at FROM callbacks WHERE type = 'device_sms' AND received_at >= ?", (since,)):
        event = json.loads(event)
        events.append((event, received_at, ["%s:%s" % (device["kind"], device["id"]) for device in event.get("devices", ())]))
    if delivered and events:
        waiting.update((device.target, device) for device in _delivered(ledger, campaign, [identifiers for _event, _at, identifiers in events]))
    if any(not any(i in waiting or i in aliases for i in identifiers) for _event, _at, identifiers in events):
        confirmed = {device.target: device.request_id for device in waiting.values() if device.state == "delivered" and device.request_id}
        for target, (_state, _at, identifiers) in delivery_states(ledger, confirmed).items():
            aliases.update((alias, campaign.by_target[target]) for alias in identifiers)
    found = []
    for event, received_at, identifiers in events:
        device = next((waiting.get(i) or aliases.get(i) for i in identifiers if waiting.get(i) or aliases.get(i)), None)
        if device is not None and device.target in waiting:
            found.append((_reply_time(event, received_at), device, event.get("message") or ""))
    if not found:
        return
    later = _later_sends(ledger, campaign, {device.target for _at, device, _text in found})
    for at, device, text in sorted(found, key=lambda entry: (entry[0], entry[1].position)):
        if at < device.sent_at or at > deadlines.get(device.wave, math.inf):
            continue
        if any(device.sent_at < other <= at for other in later.get(device.target, ())):
            continue  # the reply is to a later campaign's send
        if error_pattern and error_pattern.search(text):
            device.advance("reply_error", finished_at=at)
        elif pattern is None or pattern.search(text):
            device.advance("replied", finished_at=at)


def _delivered(ledger, campaign, named):
    """Read one by one the settled delivered devices that the replies ``named`` (lists of identifiers) may be from: those
    named by the identifier they are held by, or every one when a reply lacks one of the campaign's kinds of identifier
    (its device may be held by another: its other identifiers are in the deliveries). The devices read."""
    kinds = set(campaign.definition.get("kinds") or ())
    select = "SELECT %s FROM campaign_devices WHERE campaign_id = ? AND state = 'delivered'" % _COLUMNS
    if not kinds or any(not kinds <= {identifier.split(":", 1)[0] for identifier in identifiers} for identifiers in named):
        found = ledger.store.rows(select, (campaign.id,))
    else:
        found = []
        for among, targets in ledger.store.among(sorted({identifier for identifiers in named for identifier in identifiers})):
            found.extend(ledger.store.rows(select + " AND target " + among, (campaign.id, *targets)))
    devices = [Device(*row) for row in found if row[0] not in campaign.by_target]
    campaign.add(devices)
    return devices


def _later_sends(ledger, campaign, targets):
    """target → the times other campaigns of the scope sent to it."""
    found = {}
    for among, some in ledger.store.among(sorted(targets)):
        rows = ledger.store.rows("SELECT d.target, d.sent_at FROM campaign_devices d JOIN campaigns c ON c.id = d.campaign_id WHERE c.scope = ? "
                                 "AND c.id <> ? AND d.sent_at IS NOT NULL AND d.target " + among, (campaign.scope, campaign.id, *some))
        for target, at in rows:
            found.setdefault(target, []).append(at)
    return found


# --- deciding -----------------------------------------------------------------------------------------------


def decide(campaign):
    """The campaign's state from its devices: aborted by a criterion or a gate that can no longer pass, the current
    wave moved past every passed gate, completed after the last, else running (devices to send) or waiting."""
    if campaign.state in FINAL:
        return
    crossed = None
    if campaign.policy["abort"]:
        outcomes = campaign.outcomes()
        outcomes = [outcome for outcome in outcomes if outcome[3] != SKIPPED]
        crossed = crossing(campaign.policy["abort"], [(target, state) for _at, _position, target, state, _wave in outcomes])
    if crossed:
        criterion, index, count, failed = crossed
        at, _position, target, _state, _wave = outcomes[index]
        campaign.state = ABORTED
        campaign.abort_reason = {"criterion": criterion, "gate": None, "device": device_of(target), "finished": count, "failed": failed,
                                 "at": iso_time(at) if at != math.inf else None}
        return
    while True:
        counts = campaign.states(campaign.wave)
        verdict, needed, succeeded = gate(counts, campaign.policy["success_threshold"], campaign.success)
        if verdict == "failed":
            # When: the failure of the wave after which its successes and its devices without an outcome were fewer than needed.
            failures = [at for at, _position, _target, state, wave in campaign.outcomes() if wave == campaign.wave and state in FAILURES]
            at = failures[sum(counts.values()) - counts[SKIPPED] - needed]
            campaign.state = ABORTED
            campaign.abort_reason = {"criterion": None, "gate": campaign.wave, "device": None, "needed": needed, "succeeded": succeeded,
                                     "finished": sum(count for state, count in counts.items() if finished(state, campaign.success)),
                                     "failed": sum(counts[state] for state in FAILURES), "at": iso_time(at) if at != math.inf else None}
            return
        if verdict == "open":
            break
        if campaign.wave == len(campaign.ends):
            campaign.state = COMPLETED
            return
        campaign.wave += 1
    if campaign.state != PAUSED:
        campaign.state = RUNNING if campaign.states(campaign.wave)["pending"] else WAITING


def figures(campaign):
    """The result fields of a campaign's state: per wave and in total."""
    waves = []
    for wave in range(1, len(campaign.ends) + 1):
        states = campaign.states(wave)
        verdict, needed, succeeded = gate(states, campaign.policy["success_threshold"], campaign.success)
        if wave < campaign.wave or campaign.state == COMPLETED:
            verdict = "passed"
        elif wave > campaign.wave:
            verdict = "not_started"
        entry = _counts(states)
        entry.update(wave=wave, devices=sum(states.values()), gate={"state": verdict, "needed": needed, "succeeded": succeeded})
        waves.append(entry)
    total = _counts(campaign.states())
    total.update(campaign_state=campaign.state, wave=campaign.wave, waves_total=len(campaign.ends), devices_total=campaign.devices_total,
                 waves=waves, abort_reason=campaign.abort_reason)
    return total


def _counts(counted):
    """The result's counts of a wave or a campaign whose devices are in the states ``counted`` (a Counter)."""
    return {"sent": sum(count for state, count in counted.items() if RANKS[state] >= 1 and state not in NOT_SENT), "unconfirmed": counted["unconfirmed"],
            "delivered": counted["delivered"], "replied": counted["replied"], "failures": {failure: counted[failure] for failure in FAILURES},
            "pending": counted["pending"], "skipped_inactive": counted[SKIPPED]}


def devices(campaign, states=None):
    """The devices of ``campaign`` (of ``states`` when given) in the campaign's order, as the info module lists them."""
    return [dict(device_of(device.target), wave=device.wave, state=device.state, request_id=device.request_id,
                 sent_at=None if device.sent_at is None else iso_time(device.sent_at),
                 finished_at=None if device.finished_at is None else iso_time(device.finished_at))
            for device in campaign.devices if states is None or device.state in states]


# --- one step ------------------------------------------------------------------------------------------------


class Step:
    """One call of ``vz_sms_campaign``: ``params`` are the module's; ``client`` a ThingSpaceClient; ``ledger`` read-only
    in check mode."""

    def __init__(self, params, client, ledger, scope, check_mode=False, clock=None, sleep=None):
        self.params, self.client, self.ledger, self.scope = params, client, ledger, scope
        self.check_mode, self.clock, self.sleep = check_mode, clock or time.time, sleep or time.sleep
        self.warnings, self.request_ids, self.sent = [], [], 0
        self.device_list = None  # the account's device list, once a send of this step read it

    def run(self):
        """(result, failure message or None)."""
        params = self.params
        campaign = load(self.ledger, self.scope, params["name"], whole=False)
        definition, policy = self._options()
        if params["skip_inactive"] and not (campaign.account if campaign else params["account_name"]):
            raise ThingSpaceError("skip_inactive: needs account_name: the state of each device is read from the account's device list; nothing was "
                                  "sent")
        if campaign is None:
            if params["state"] != STARTED:
                raise ThingSpaceError("Campaign %r has no record in the ledger %s under %s, so it cannot be %s; nothing was changed"
                                      % (params["name"], self.ledger.where, self.scope, params["state"]))
            campaign = self._create(definition, policy)
            if campaign.id is not None:
                self._compare(campaign, definition)  # another controller may have created it first, otherwise
        else:
            self._compare(campaign, definition)
            self._policy(campaign, policy)
        now = self.clock()
        if params["state"] != STARTED:
            campaign = self._evaluate(campaign)
        if params["state"] == ABORTED and campaign.state not in FINAL:
            campaign.state = ABORTED
            campaign.abort_reason = {"criterion": None, "gate": None, "device": None, "by_hand": True, "at": iso_time(now)}
            return self._finish(campaign, now, "Campaign %s aborted by hand: it sends nothing more" % campaign.name)
        if params["state"] == PAUSED and campaign.state not in FINAL:
            campaign.state = PAUSED
            return self._finish(campaign, now, "Campaign %s paused: it sends nothing until state: started" % campaign.name)
        if params["state"] == STARTED and campaign.state == PAUSED:
            if not self.check_mode:
                _resume(self.ledger, campaign, now)
            campaign.state = RUNNING
        failure = self._advance(campaign)
        if failure is None and params["wait"] == "gate" and not self.check_mode:  # check mode changes nothing it could wait for
            failure = self._wait(campaign)
        return self._finish(campaign, self.clock(), None, failure)

    def _options(self):
        """The definition and policy the options give (None: left out, the recorded value applies)."""
        params = self.params
        definition = {"account_name": params["account_name"], "data_encoding": params["data_encoding"], "waves": params["waves"],
                      "success": params["success"], "reply_pattern": params["reply_pattern"], "reply_error_pattern": params["reply_error_pattern"],
                      "message": None, "selection": None}
        try:
            if params["state"] == STARTED and params["sms_message"] is None:
                raise ValueError("sms_message: needed with state: started (the ledger keeps only its hash, so a step cannot send without it)")
            for option in ("reply_pattern", "reply_error_pattern"):
                if params[option] is not None:
                    try:
                        re.compile(params[option])
                    except re.error as exc:
                        raise ValueError("%s: %r is not a regular expression: %s" % (option, params[option], exc))
            if params["waves"] is not None:
                for index, value in enumerate(params["waves"]):
                    share(value, 100, "waves[%d]" % index)
            if params["success_threshold"] is not None:
                share(params["success_threshold"], 100, "success_threshold")
            if params["wait_timeout"] < 0:
                raise ValueError("wait_timeout: must be 0 or more seconds")
            for option in ("wave_timeout", "max_per_minute"):
                if params[option] is not None and params[option] < 1:
                    raise ValueError("%s: must be 1 or more" % option)
            abort = check_abort(params["abort"]) if params["abort"] is not None else None
        except ValueError as exc:
            raise ThingSpaceError(str(exc))
        self.plan = None
        if params["sms_message"] is not None:
            try:
                self.size = message_size(params["sms_message"], params["data_encoding"])
            except ValueError as exc:
                raise ThingSpaceError(str(exc))
            definition["message"] = hashlib.sha256(params["sms_message"].encode("utf-8")).hexdigest()
            if any(params.get(name) for name in ("devices", "devices_file", "group_name", "service_plan", "custom_fields")):
                self.plan = plan_send(self._send_params(), self.check_mode)
                definition["selection"] = self._selection(self.plan)
        policy = {"success_threshold": params["success_threshold"], "wave_timeout": params["wave_timeout"], "abort": abort,
                  "max_per_minute": params["max_per_minute"], "skip_inactive": params["skip_inactive"]}
        return definition, policy

    def _send_params(self):
        """Parameters of send.plan_send for the campaign's selection and message, with its name as idempotency key."""
        params = self.params
        return dict(sms_message=params["sms_message"], data_encoding=params["data_encoding"], devices=params.get("devices"),
                    devices_file=params.get("devices_file"), group_name=params.get("group_name"), service_plan=params.get("service_plan"),
                    custom_fields=params.get("custom_fields"), account_name=params["account_name"], filter_tracking="device",
                    allow_empty=False, unknown_devices="fail", skip_inactive=False, batch_size=MAX_DEVICES_PER_REQUEST, max_devices=None,
                    idempotency_key=params["name"])

    @staticmethod
    def _selection(plan):
        """The selection as frozen: the filters, or a device list as its size and the SHA-256 of its sorted targets."""
        if plan.filters is not None:
            return {"filters": plan.filters}
        # The plan's own strings, sorted, hashed as their lines: no second copy of a million devices.
        targets = sorted(plan.devices.targets)
        digest = hashlib.sha256()
        for start in range(0, len(targets), _HASHED):
            digest.update(("\n" if start else "").encode("utf-8") + "\n".join(targets[start:start + _HASHED]).encode("utf-8"))
        return {"devices": len(targets), "sha256": digest.hexdigest()}

    def _create(self, definition, policy):
        if self.plan is None:
            raise ThingSpaceError("Campaign %r does not exist yet: give its selection (devices, devices_file, or group_name, service_plan, "
                                  "custom_fields with account_name); nothing was sent" % self.params["name"])
        sender = SmsSend(self.plan, self.client, self.ledger, self.scope, check_mode=True)
        targets = sender.select_targets()
        if not targets:
            raise ThingSpaceError("Campaign %r: the selection matches no device of account %s; nothing was sent. Check the filters"
                                  % (self.params["name"], self.plan.account))
        frozen = dict(DEFAULT_DEFINITION, **{name: value for name, value in definition.items() if value is not None})
        recorded = dict(DEFAULT_POLICY, **{name: value for name, value in policy.items() if value is not None})
        try:
            return _create(self.ledger, self.scope, self.params["name"], self.params["account_name"], frozen, recorded, targets, self.clock(),
                           self.check_mode)
        except ValueError as exc:
            raise ThingSpaceError("Campaign %r: %s; nothing was sent" % (self.params["name"], exc))

    def _compare(self, campaign, definition):
        """Fail naming each frozen option given with another value than the campaign was created with."""
        recorded = dict(campaign.definition, account_name=campaign.account)
        differences = []
        for name in FROZEN:
            given = definition.get(name)
            if given is None or given == recorded.get(name):
                continue
            if name == "message":
                differences.append("sms_message: another text")
            elif name == "selection":
                differences.append("selection: was %s, now %s" % (_selection_text(recorded.get(name)), _selection_text(given)))
            else:
                differences.append("%s: was %s, now %s" % (name, json.dumps(recorded.get(name)), json.dumps(given)))
        if differences:
            raise ThingSpaceError("Campaign %r was created with other options (%s); nothing was sent. Give the campaign's own options, or start a "
                                  "new campaign under another name" % (campaign.name, "; ".join(differences)))

    def _policy(self, campaign, policy):
        """Replace the recorded policy options this step gives with other values, with a warning each."""
        changed = {name: value for name, value in policy.items() if value is not None and value != campaign.policy.get(name)}
        if not changed or campaign.state in FINAL:
            return
        for name, value in changed.items():
            self.warnings.append("Campaign %s: %s changed from %s to %s for this and later steps"
                                 % (campaign.name, name, json.dumps(campaign.policy.get(name)), json.dumps(value)))
        campaign.policy.update(changed)
        if not self.check_mode:
            with self.ledger.store.transaction():
                self.ledger.store.execute("UPDATE campaigns SET policy = ? WHERE id = ?", (json.dumps(campaign.policy, sort_keys=True), campaign.id))

    def _evaluate(self, campaign, claimed_at=None):
        """Read the campaign's state and counts again, observe, write what moved (not in check mode), decide from the
        counts as written, and write the decision; the campaign as it is now, holding the devices of its current wave.
        The devices read before are kept: their states only move forward, and observe brings them forward from the
        ledger's own records, which hold what any controller did."""
        if campaign.id is not None:
            campaign = self._reread(campaign)
        hold(self.ledger, campaign)
        now = self.clock()
        observe(self.ledger, campaign, now, claimed_at)
        if self.check_mode or campaign.id is None:
            decide(campaign)
        else:
            _save(self.ledger, campaign, now, deciding=True)
            if campaign.state != campaign.saved_state:
                campaign = self._reread(campaign)
        hold(self.ledger, campaign)
        return campaign

    def _reread(self, campaign):
        """The campaign's state as stored: another controller's final state or pause outranks this step's reading. Outside
        check mode, its counts too (check mode keeps those read with its devices: one snapshot)."""
        store = self.ledger.store
        stored = store.rows("SELECT state, wave, abort_reason FROM campaigns WHERE id = ?", (campaign.id,))[0]
        campaign.state, campaign.wave = stored[0], stored[1]
        campaign.abort_reason = json.loads(stored[2]) if stored[2] else None
        if not self.check_mode:
            campaign.counts = _counted(store.rows(_COUNTS, (campaign.id,)))
        return campaign

    def _advance(self, campaign):
        """Send the current wave's due devices, batch by batch, deciding again from the store right before each (after any
        wait for the pace, so an abort recorded meanwhile stops it); the failure or None. Devices another controller is
        sending are left to it, and waited for (up to IN_FLIGHT_WAIT) when nothing else is due, so the step reports them."""
        busy_until = None
        while True:
            self.campaign = campaign = self._evaluate(campaign)
            if campaign.state != RUNNING:
                return None
            due = [device.target for device in campaign.wave_devices(campaign.wave) if device.state == "pending" and device.target not in campaign.in_flight]
            if not due and not self.check_mode:
                busy_until = busy_until or self.clock() + IN_FLIGHT_WAIT
                if self.clock() >= busy_until:
                    self.warnings.append("Campaign %s: %d device(s) of wave %d are being sent by another controller; this step leaves them to it"
                                         % (campaign.name, len(campaign.in_flight), campaign.wave))
                    return None
                self.sleep(IN_FLIGHT_INTERVAL)
                continue
            limit = batch_limit(campaign.policy["max_per_minute"])
            batch = due[:limit]
            if self.check_mode:
                self.preview = self._preview(campaign, due, limit)
                return None
            recorded = self.ledger.send_rows(self.scope, campaign.name, batch)
            if recorded:  # another controller sent or is sending some of them: read in, before the pace is reserved for them
                campaign.recorded.update(recorded)
                continue
            go, later = _reserve(self.ledger, campaign, len(batch), self.clock())
            if not go:
                if self.params["wait"] != "gate":
                    return None
                self.sleep(max(0.0, later - self.clock()))
                continue
            at = self.clock()
            sender = self._sender(campaign, sorted(batch), len(batch))  # in the ledger's key order: its claim writes one part of the index after another
            result, failure = sender.run()
            self.device_list = sender.device_list
            self.warnings.extend(result["warnings"])
            self.request_ids.extend(result["request_ids"])
            self.sent += result["devices_sent"] or 0
            if campaign.policy["skip_inactive"]:
                for device in result["devices_inactive"] or ():
                    campaign.by_target[target_of((device["kind"], device["id"]))].advance(SKIPPED, finished_at=at)
            # The batch's devices with their claim time as sent_at.
            self.campaign = campaign = self._evaluate(campaign, claimed_at=dict.fromkeys(batch, at))
            if failure:
                if any(entry.get("status") == "unconfirmed" for entry in result["batches"]):
                    error = next(entry["error"] for entry in result["batches"] if entry.get("status") == "unconfirmed")
                    return ("Campaign %s, wave %d: a batch of %d device(s) is unconfirmed: %s. The ledger records them unconfirmed: the campaign "
                            "never sends them again, they count as sent for the gate, and a callback of their request settles them"
                            % (campaign.name, campaign.wave, len(batch), error))
                return "Campaign %s, wave %d: %s" % (campaign.name, campaign.wave, failure)
            if not result["request_ids"] and not any(campaign.by_target[target].state == "pending" and target not in campaign.in_flight for target in batch):
                continue  # another controller claimed the batch first: its outcome is read next
            if not result["request_ids"]:
                return None

    def _sender(self, campaign, targets, batch_size, check_mode=False):
        """The send of ``targets`` under the campaign's name, as vz_sms_send would make it: devices the account lacks
        (named through its device list, so with account_name) are recorded refused and the rest is sent; with
        skip_inactive the devices that are not active are left out (send.SmsSend owns both rules). The account's device
        list is read once per step."""
        plan = SendPlan(campaign.account, Devices(targets), None, TRACK_DEVICE, self.params["sms_message"], self.params["data_encoding"], self.size,
                        campaign.name, None)
        return SmsSend(plan, self.client, self.ledger, self.scope, check_mode=check_mode, batch_size=batch_size, duplicate_window=0,
                       unknown_devices=UNKNOWN_SKIP if campaign.account else UNKNOWN_FAIL, skip_inactive=campaign.policy["skip_inactive"],
                       device_list=self.device_list)

    def _preview(self, campaign, due, limit):
        """Check mode: the current wave's devices still to send, as its sends would find them: with account_name, those the
        account lacks (``devices_unknown``, left out) and those not active (``devices_inactive``, left out with
        skip_inactive, else sent with a warning)."""
        preview = {"wave": campaign.wave, "devices": len(due), "first": [device_of(target) for target in due[:PREVIEW_LIMIT]], "devices_inactive": None,
                   "devices_unknown": []}
        if campaign.account:
            result, _failure = self._sender(campaign, due, limit, check_mode=True).run()
            self.warnings.extend(result["warnings"])
            preview.update(devices=result["devices_sent"], first=result.get("devices_preview", []), devices_inactive=result["devices_inactive"],
                           devices_unknown=result["devices_unknown"])
        return preview

    def _wait(self, campaign):
        """wait: gate: read the ledger until the current wave's gate decides (and send the next wave's due devices), or
        wait_timeout passes."""
        wave = self.campaign.wave
        deadline = self.clock() + self.params["wait_timeout"]
        while self.campaign.state in (RUNNING, WAITING) and self.campaign.wave == wave:
            now = self.clock()
            if now >= deadline:
                self.warnings.append("Campaign %s: wave %d's gate did not decide within wait_timeout (%d s); the campaign goes on at the next step"
                                     % (self.campaign.name, wave, self.params["wait_timeout"]))
                return None
            self.sleep(min(GATE_INTERVAL, deadline - now))
            failure = self._advance(self.campaign)
            if failure:
                return failure
        return None

    def _finish(self, campaign, now, msg, failure=None):
        campaign = getattr(self, "campaign", campaign)
        if msg is not None and not self.check_mode:
            _save(self.ledger, campaign, now)
            campaign = self._reread(campaign) if campaign.id is not None else campaign
        result = figures(campaign)
        result.update(changed=bool(self.sent) or campaign.state != campaign.saved_state or campaign.id is None, campaign=campaign.name,
                      devices_sent=self.sent, request_ids=self.request_ids, warnings=self.warnings)
        if self.check_mode:
            preview = getattr(self, "preview", None)
            result["next_wave_preview"] = preview or {"wave": campaign.wave, "devices": 0, "first": [], "devices_inactive": None, "devices_unknown": []}
        if failure is None and campaign.state == ABORTED and not (campaign.abort_reason or {}).get("by_hand") and self.params["fail_on_abort"]:
            failure = "Campaign %s aborted: %s" % (campaign.name, abort_text(campaign.abort_reason))
        result["msg"] = failure or msg or _summary(campaign, result, self.check_mode)
        return result, failure


def abort_text(reason):
    """An abort reason in words, with its counts."""
    if reason.get("gate") is not None:
        return ("wave %d's gate can no longer pass: %d of its devices succeeded, %d needed (success_threshold), %d failed"
                % (reason["gate"], reason["succeeded"], reason["needed"], reason["failed"]))
    if reason.get("criterion"):
        criterion = reason["criterion"]
        return ("abort criterion {failure: %s, threshold: %s, min_devices: %d} met at device %s:%s (%d of %d finished devices failed)"
                % (criterion["failure"], criterion["threshold"], criterion["min_devices"], reason["device"]["kind"], reason["device"]["id"],
                   reason["failed"], reason["finished"]))
    return "by hand"


def _summary(campaign, result, check_mode):
    sent = ("would send %d device(s) of wave %d" % (result["next_wave_preview"]["devices"], result["next_wave_preview"]["wave"]) if check_mode
            else "sent to %d device(s) in this run" % result["devices_sent"])
    shown = (campaign.name, campaign.state, campaign.wave, len(campaign.ends), sent, result["sent"], campaign.devices_total)
    return "Campaign %s: %s, wave %d of %d; %s; %d of %d devices sent" % shown


def _selection_text(selection):
    if selection is None:
        return "none"
    if "filters" in selection:
        return json.dumps(selection["filters"], sort_keys=True)
    return "a device list of %d device(s)" % selection["devices"]


def step(params, client, ledger, scope, check_mode=False, clock=None, sleep=None):
    """One step of the campaign ``params["name"]``: (result, failure message or None)."""
    return Step(params, client, ledger, scope, check_mode, clock, sleep).run()


def copy_campaigns(source, destination, check_mode=False):
    """Copy the campaigns of the Ledger ``source`` into the Ledger ``destination`` (in check mode, count them): a
    campaign the destination lacks whole; one it has with the same definition merged (devices forward only, a final
    state of the source's kept); one it has with another definition refuses the copy, before anything is written.
    Returns (campaigns read, campaigns copied or merged: those of which the destination lacked something)."""
    columns = "id, scope, name, account, definition, policy, devices_total, waves, state, wave, abort_reason, next_send_at, created_at, updated_at"
    with source.store.transaction():
        campaigns = source.store.rows("SELECT %s FROM campaigns ORDER BY id" % columns)
        rows = source.store.rows("SELECT campaign_id, %s FROM campaign_devices" % _COLUMNS)
    by_campaign = {}
    for row in rows:
        by_campaign.setdefault(row[0], []).append(row[1:])
    plan, conflicts = [], []
    for row in campaigns:
        present = destination.store.rows("SELECT id, definition, account FROM campaigns WHERE scope = ? AND name = ?", (row[1], row[2]))
        if present and (json.loads(present[0][1]) != json.loads(row[4]) or present[0][2] != row[3]):
            conflicts.append("%s (%s)" % (row[2], row[1]))
            continue
        if present:
            states = dict(destination.store.rows("SELECT target, state FROM campaign_devices WHERE campaign_id = ?", (present[0][0],)))
            further = any(RANKS[device[3]] > RANKS[states.get(device[0], "pending")] for device in by_campaign.get(row[0], []))
            if not further and not (row[8] in FINAL and destination.store.rows("SELECT state FROM campaigns WHERE id = ?", (present[0][0],))[0][0]
                                    not in FINAL):
                continue  # nothing the destination lacks
        plan.append((row, present[0][0] if present else None))
    if conflicts:
        raise ThingSpaceError("The campaigns %s were created with other options in %s than in %s; nothing was copied. Copy into another "
                              "ledger_schema, or resolve them by hand" % (", ".join(conflicts), destination.where, source.where))
    if check_mode or not plan:
        return len(campaigns), len(plan)
    store = destination.store
    with store.transaction():
        for row, campaign_id in plan:
            if campaign_id is None:
                store.execute("INSERT INTO campaigns (%s) VALUES (%s)" % (columns.split(", ", 1)[1], ", ".join("?" * 13)), row[1:])
                campaign_id = store.rows("SELECT id FROM campaigns WHERE scope = ? AND name = ?", (row[1], row[2]))[0][0]
            elif row[8] in FINAL:
                store.execute("UPDATE campaigns SET state = ?, abort_reason = coalesce(abort_reason, ?) WHERE id = ? AND state NOT IN ('completed', "
                              "'aborted')", (row[8], row[10], campaign_id))
            store.executemany("INSERT INTO campaign_devices (campaign_id, %s) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (campaign_id, position) DO "
                              "NOTHING" % _COLUMNS, [(campaign_id, *device) for device in by_campaign.get(row[0], [])])
            campaign = load(destination, row[1], row[2])
            mine = {device.target: device for device in campaign.devices}
            for target, _position, _wave, state, request_id, sent_at, finished_at in by_campaign.get(row[0], []):
                mine[target].advance(state, request_id, sent_at, finished_at)
            _write_devices(store, campaign)
            _write_campaign(store, campaign, time.time())
            _recount(store, campaign_id)
    return len(campaigns), len(plan)


# --- reading, for vz_sms_campaign_info -------------------------------------------------------------------------


def reading(ledger, scope, name, now=None, whole=True):
    """The campaign ``name`` of ``scope`` as a step at ``now`` would find it (devices observed, abort and gate decided),
    without writing anything; None when the ledger has none. ``whole``: every device read one by one (for ``devices``
    and the report); False reads only those that may still move, for the figures (the same)."""
    campaign = load(ledger, scope, name, whole)
    if campaign is not None:
        observe(ledger, campaign, time.time() if now is None else now)
        decide(campaign)
    return campaign


def scopes(ledger, name=None):
    """{service scope: its number of campaigns (named ``name``, when given)} over the whole ledger."""
    if name is None:
        return dict(ledger.store.rows("SELECT scope, count(*) FROM campaigns GROUP BY scope ORDER BY scope"))
    return dict(ledger.store.rows("SELECT scope, count(*) FROM campaigns WHERE name = ? GROUP BY scope ORDER BY scope", (name,)))
