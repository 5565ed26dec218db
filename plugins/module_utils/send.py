# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One idempotent SMS send (docs/design.md, "The path of one send"): selection → message rules → ledger diff →
batches of at most 10,000 devices → POST /sms → ledger → result. Check mode stops before the POST.

``plan_send`` checks every input without I/O; ``SmsSend.run`` does the rest. For a device list every device
is a ledger target (a re-run sends only to devices not sent yet). Filters are resolved through the device list
and sent by device in the same way (``filter_tracking: device``), or sent as filters with the selection as one
target (``filter_tracking: selection``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import namedtuple

from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import ALL, NEW, SENT, UNCONFIRMED, UNKNOWN, iso_time
from ansible_collections.thingspace.m2m.plugins.module_utils.sms import (
    MAX_DEVICES_PER_REQUEST,
    RESOLVED_KIND_ORDER,
    Devices,
    check_custom_fields,
    device_targets,
    first_of,
    message_size,
    normalize_device,
    spelling,
)

SELECTION = "selection"
PREVIEW_LIMIT = 50
# How a filter send is recorded: each resolved device, or the selection as a whole.
TRACK_DEVICE, TRACK_SELECTION = "device", "selection"
# What a send does when ThingSpace refuses devices of a list that the account does not have (unknown_devices).
UNKNOWN_FAIL, UNKNOWN_SKIP = "fail", "skip"
# The error of a POST /sms naming a device the account does not have; it does not reliably say which one.
DEVICE_NOT_FOUND = "REQUEST_FAILED.DeviceNotFound"
# Hours within which the same message to the same device under another key is warned about (duplicate_window).
DUPLICATE_WINDOW = 24

# ``legacy_key`` is the key version 0.1.0 derived for the same device-list send (see derive_key), or None.
# ``tracking`` is TRACK_DEVICE for device lists and for filters resolved to devices.
SendPlan = namedtuple("SendPlan", "account devices filters tracking message encoding size key legacy_key")


def plan_send(params, check_mode=False):
    """Check the inputs of a send (no request is made; a devices_file is read); a ThingSpaceError names the field and the rule."""
    try:
        size = message_size(params["sms_message"], params["data_encoding"])
        devices, option = params["devices"], "devices"
        if params["devices_file"] is not None:
            devices, option = read_devices_file(params["devices_file"]), "devices_file %s" % params["devices_file"]
        if devices is not None:
            devices = Devices(device_targets(devices, option))
            if not devices:
                raise ValueError("%s: the list is empty; give at least one {kind, id} or use a filter" % option)
        filters, tracking = None, TRACK_DEVICE
        if devices is None:
            filters = {"group_name": params["group_name"], "service_plan": params["service_plan"],
                       "custom_fields": check_custom_fields(params["custom_fields"])}
            if not any(filters.values()):
                raise ValueError("group_name, service_plan, custom_fields: give at least one non-empty filter, or devices")
            tracking = params["filter_tracking"]
            if not params["account_name"] and (tracking == TRACK_DEVICE or check_mode or params["max_devices"] is not None or not params["allow_empty"]):
                raise ValueError("account_name: needed to resolve a filter selection through the device list (check mode, max_devices, "
                                 "filter_tracking: device) and to check that it matches a device; give it, or send with filter_tracking: "
                                 "selection and allow_empty: true")
        elif params["unknown_devices"] == UNKNOWN_SKIP and not params["account_name"]:
            raise ValueError("unknown_devices: skip needs account_name: the devices ThingSpace refuses are found in the account's device list")
        if params["skip_inactive"] and tracking == TRACK_SELECTION:
            raise ValueError("skip_inactive: needs the devices one by one; filter_tracking: selection sends the selection whole, to its "
                             "inactive devices too. Use filter_tracking: device")
        if params["skip_inactive"] and devices is not None and not params["account_name"]:
            raise ValueError("skip_inactive: needs account_name: the state of each device is read from the account's device list")
        if not 1 <= params["batch_size"] <= MAX_DEVICES_PER_REQUEST:
            raise ValueError("batch_size: %d is outside 1..%d (the API takes at most %d devices per request)"
                             % (params["batch_size"], MAX_DEVICES_PER_REQUEST, MAX_DEVICES_PER_REQUEST))
        if params["max_devices"] is not None and params["max_devices"] < 1:
            raise ValueError("max_devices: must be at least 1")
    except ValueError as exc:
        raise ThingSpaceError(str(exc))
    account = params["account_name"]
    key, legacy_key = params["idempotency_key"], None
    if not key:
        key = derive_key(account, filters, params["sms_message"], params["data_encoding"])
        if filters is None:
            legacy_key = _derive(account, {"devices": True}, params["sms_message"], params["data_encoding"])
        elif filters != _canonical(filters):
            legacy_key = _derive(account, filters, params["sms_message"], params["data_encoding"])
    return SendPlan(account, devices, filters, tracking, params["sms_message"], params["data_encoding"], size, key, legacy_key)


def read_devices_file(path):
    """The entries of the device list in the JSON file at ``path``, one by one: a list of ``{kind, id}``, or an object
    whose only key, ``devices``, holds one. plan_send checks them, as for the option ``devices``. The file is decoded
    entry by entry as it is read (_stream_list), so a list of a million devices is never held whole as JSON objects; a
    file of another shape is read whole to say what is wrong with it."""
    streamed = False
    try:
        with open(path, encoding="utf-8") as handle:
            for entry in _stream_list(handle):
                streamed = True
                yield entry
        return
    except OSError as exc:
        raise ValueError("devices_file: cannot read %s: %s" % (path, exc.strerror or exc))
    except (_NotStreamed, UnicodeDecodeError):
        pass
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except OSError as exc:
        raise ValueError("devices_file: cannot read %s: %s" % (path, exc.strerror or exc))
    except ValueError as exc:  # not JSON, or not UTF-8
        raise ValueError("devices_file: %s is not a JSON file: %s" % (path, exc))
    if isinstance(content, dict) and list(content) == ["devices"] and not streamed:
        content = content["devices"]
    if not isinstance(content, list) or streamed:  # streamed: the list is followed by more than the end of the file ("devices" twice)
        raise ValueError("devices_file: %s holds neither a JSON list of {kind, id} nor an object with the single key 'devices' holding one" % path)
    yield from content


class _NotStreamed(Exception):
    """The text is not ``[...]`` or ``{"devices": [...]}`` as _stream_list reads them, or not JSON."""


# How an object holding the list begins, and how much text is read at a time (a chunk holds thousands of entries).
_DEVICES_KEY = re.compile(r'\{\s*"devices"\s*:\s*\[')
_CHUNK = 1 << 20
# Characters of values decoded at once (about 27 devices: a few objects at a time, never the file's).
_WHOLE = 1 << 10
_SEPARATOR = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")


def _stream_list(handle):
    """The elements of the JSON list, or of the list under the single key ``devices``, in the text file ``handle``,
    decoded one at a time; _NotStreamed where the text is not of that shape."""
    text = _Text(handle)
    closing = ""
    if text.peek() == "{":
        text.ahead(len('{ "devices": ['))
        found = _DEVICES_KEY.match(text.text, text.pos)
        if not found:
            raise _NotStreamed()
        text.pos, closing = found.end(), "}"
    elif text.peek() == "[":
        text.pos += 1
    else:
        raise _NotStreamed()
    if text.peek() == "]":
        text.pos += 1
    else:
        yield from text.elements()
    if text.rest().strip() != closing:
        raise _NotStreamed()


class _Text:
    """A text file read a chunk at a time, with a position in what is read and not used yet."""

    def __init__(self, handle):
        self.handle = handle
        self.text, self.pos, self.done = handle.read(_CHUNK), 0, False
        self.decoder = json.JSONDecoder()

    def _more(self):
        more = self.handle.read(_CHUNK)
        self.text, self.pos, self.done = self.text[self.pos:] + more, 0, not more

    def ahead(self, count):
        """Have at least ``count`` characters read beyond the position, unless the file ends first."""
        while len(self.text) - self.pos < count and not self.done:
            self._more()

    def peek(self):
        """The next character that is not white space ('' at the end), not consumed."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in " \t\n\r":
                self.pos += 1
            if self.pos < len(self.text) or self.done:
                return self.text[self.pos:self.pos + 1]
            self._more()

    def elements(self):
        """The values of a list up to its closing ``]``, from the position (at a value), each read with the separator after
        it; a value or separator cut by the end of the chunk is read again with the next. Most values are decoded
        _WHOLE characters of them at a time (_whole_values); after a text where that fails, one by one up to the next chunk."""
        raw_decode = self.decoder.raw_decode
        whole = True
        while True:
            if whole:
                values = self._whole_values()
                if values is not None:
                    yield from values
                    self.peek()
                    continue
                whole = False
            try:
                value, end = raw_decode(self.text, self.pos)
                separator = _SEPARATOR.match(self.text, end)
            except ValueError:
                separator = None
            if separator is None:
                if self.done:
                    raise _NotStreamed()
                self._more()
                self.peek()
                whole = True
                continue
            self.pos = separator.end()
            yield value
            if separator.group(1) == "]":
                return
            if self.pos == len(self.text):
                self.peek()

    def _whole_values(self):
        """The values from the position up to the last ``},`` of the next _WHOLE characters, decoded in one json.loads (the
        same decoder as raw_decode, in C: a fifth of the time of one raw_decode per value), the position moved past that
        comma; None when they hold no ``},`` or what comes before it is not values and commas (the ``}`` closes an object
        inside a value or is in a string: a text cut inside a string or a value never decodes)."""
        cut = self.text.rfind("},", self.pos, self.pos + _WHOLE)
        if cut < self.pos:
            return None
        try:
            values = json.loads("[%s]" % self.text[self.pos:cut + 1])
        except ValueError:
            return None
        self.pos = cut + 2
        return values

    def rest(self):
        return self.text[self.pos:] + self.handle.read()


def derive_key(account, filters, message, encoding):
    """The default idempotency key. A device list contributes only the fact that it is one, so adding devices
    to the list keeps the key and sends only to the new ones; a device is the same in every account, so the
    account counts only for filters (it is part of what they select). Custom field values count in lower case:
    ThingSpace matches them ignoring case."""
    if filters is None:
        return _derive(None, {"devices": True}, message, encoding)
    return _derive(account, _canonical(filters), message, encoding)


def _canonical(selection):
    """A selection (the filters, or a recorded purpose's) as ThingSpace matches it: custom field values in lower case."""
    fields = selection.get("custom_fields") or []
    return dict(selection, custom_fields=[dict(field, value=field["value"].lower()) for field in fields])


def same_use(field, recorded, given):
    """Whether a field of a recorded purpose and the one of this send name the same use (Ledger.check_purpose):
    equal, but for custom field values, which match ignoring case."""
    if field == "selection" and isinstance(recorded, dict) and isinstance(given, dict):
        return _canonical(recorded) == _canonical(given)
    return recorded == given


def _derive(account, selection, message, encoding):
    canonical = json.dumps({"account": account, "selection": selection, "message": message, "encoding": encoding}, sort_keys=True)
    return "auto-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def purpose(plan):
    """What the ledger records a key was used for: the message (as a hash), the encoding, the selection and how
    it is tracked. A device list counts as one selection whatever its devices, so a list may grow under its key."""
    selection = "device list" if plan.filters is None else dict(plan.filters, account_name=plan.account)
    return {"message": hashlib.sha256(plan.message.encode("utf-8")).hexdigest(), "encoding": plan.encoding, "selection": selection,
            "tracking": plan.tracking}


def target_of(device):
    """The ledger target of a device ``(kind, id)`` as sms.normalize_devices gives it."""
    return "%s:%s" % device


def device_of(target):
    """The device ``{kind, id}`` of a ledger target."""
    kind, ident = target.split(":", 1)
    return {"kind": kind, "id": ident}


class SmsSend:
    """Runs one plan with ``client`` (a ThingSpaceClient; it makes no request until one is needed, so a check-mode
    preview of a device list without account_name makes none) and ``ledger`` (a Ledger, read-only in check mode)."""

    def __init__(self, plan, client, ledger, scope, check_mode=False, force=False, resend_unconfirmed=False, max_devices=None,
                 batch_size=MAX_DEVICES_PER_REQUEST, allow_empty=False, unknown_devices=UNKNOWN_FAIL, duplicate_window=DUPLICATE_WINDOW,
                 skip_inactive=False, device_list=None):
        self.plan = plan
        self.key = plan.key  # or the older key of the same send, chosen by run()
        self.client = client
        self.ledger = ledger
        self.scope = scope
        self.check_mode = check_mode
        self.mode = ALL if force else UNCONFIRMED if resend_unconfirmed else NEW
        self.max_devices = max_devices
        self.batch_size = batch_size
        self.allow_empty = allow_empty
        self.unknown_devices = unknown_devices
        self.duplicate_window = duplicate_window
        self.skip_inactive = skip_inactive
        self.resolved = None  # the devices a filter selects, when resolved ([] also when a selection matches none)
        self.targets = None  # the ledger targets of this send, once run
        self.refused = set()  # targets ThingSpace refused in this run (not in the account)
        # The identifiers of the account's devices, ledger target → the state of each device not active, and the kinds of
        # identifier kept of them, once the device list was read (``device_list``: as an earlier send of the same run read
        # it).
        self._known, self._states, self._kinds = device_list or (None, None, None)

    def run(self):
        """(result, failure message or None)."""
        plan = self.plan
        self.key = self._key()
        self.ledger.check_purpose(self.scope, self.key, purpose(plan), self.mode, same=same_use)
        targets = self.targets = self.select_targets()
        settled = self.ledger.resolve_unconfirmed(self.scope, self.key)
        diff = self.ledger.diff(self.scope, self.key, targets, self.mode)
        result = self._result(targets, diff)
        self._ledger_notes(result, diff, settled)
        if plan.devices is None and self.resolved == []:
            return self._empty(result), None
        if not diff.to_send:
            result["msg"] = self._nothing_to_send(targets, diff)
            return result, None
        to_send = self._inactive(diff.to_send, result)
        if not to_send:
            result["msg"] = ("Nothing to send: the %d device(s) left to send under idempotency key %s are not active (devices_inactive; "
                             "skip_inactive: true)" % (len(diff.to_send), self.key))
            return result, None
        result, failure = self._preview(to_send, result) if self.check_mode else self._send(to_send, result)
        left_out = len(diff.to_send) - len(to_send)
        if left_out:
            result["msg"] += "; %d device(s) not active %s left out (skip_inactive: true; devices_inactive)" % (
                left_out, "would be" if self.check_mode else "were")
        return result, failure

    def _inactive(self, to_send, result):
        """Report the devices to send that are not active (devices.is_inactive), as the device list gives their state:
        warned about, or with skip_inactive left out (counted in devices_skipped, never recorded, so a later run sends
        them once they are active; the run's message says how many, without a warning, as it was asked for). The states are
        known where the device list is read: a resolved selection, and a device list with account_name in check mode or
        with skip_inactive. What is left to send."""
        plan = self.plan
        if plan.devices is not None and plan.account and (self.check_mode or self.skip_inactive):
            self._unknown([])  # reads the device list once; the preview and a refused batch reuse it
        if self._states is None:
            return to_send
        from ansible_collections.thingspace.m2m.plugins.module_utils.devices import is_inactive

        candidates = [target_of(d) for d in self.resolved] if plan.tracking == TRACK_SELECTION else to_send
        inactive = [target for target in candidates if is_inactive(self._states.get(target))]
        result["devices_inactive"] = [dict(device_of(target), state=self._states[target]) for target in inactive]
        if not inactive:
            return to_send
        if not self.skip_inactive:
            per_state = {}
            for target in inactive:
                per_state[self._states[target]] = per_state.get(self._states[target], 0) + 1
            states = ", ".join("%d %s" % (count, state) for state, count in sorted(per_state.items()))
            result["warnings"].append(
                "%d device(s) this run %s to are not active (%s; devices_inactive): ThingSpace answers Undelivered for them. Set skip_inactive: "
                "true to leave them out until they are active" % (len(inactive), "would send" if self.check_mode else "sends", states))
            return to_send
        result["devices_skipped"] += len(inactive)
        inactive = set(inactive)
        return [target for target in to_send if target not in inactive]

    @property
    def device_list(self):
        """The account's device list as this send read it, for a later send of the same run: (identifiers, target →
        state of the devices not active, the kinds of identifier kept), or None when it was not read."""
        return None if self._known is None else (self._known, self._states, self._kinds)

    def select_targets(self):
        """The ledger targets: the devices of the list or of the resolved selection, or the selection as a whole
        (none when it matches no device)."""
        plan = self.plan
        if plan.devices is not None:
            if self.max_devices is not None and len(plan.devices) > self.max_devices:
                raise ThingSpaceError("max_devices: the device list holds %d devices, more than max_devices %d; nothing was sent"
                                      % (len(plan.devices), self.max_devices))
            return plan.devices.targets
        if plan.tracking == TRACK_DEVICE or self.check_mode or self.max_devices is not None:
            self.resolved = self._resolve()
        elif plan.account and not self._matches_a_device():
            self.resolved = []
        if plan.tracking == TRACK_DEVICE:
            return [target_of(d) for d in self.resolved]
        return [] if self.resolved == [] else [SELECTION]

    def _key(self):
        """The plan's key; for a send recorded under the key an earlier version derived for it (version 0.1.0 hashed
        account_name for a device list; custom field values counted as given), that key, so an upgrade does not send again."""
        legacy = self.plan.legacy_key
        if legacy and not self.ledger.knows(self.scope, self.plan.key) and self.ledger.knows(self.scope, legacy):
            return legacy
        return self.plan.key

    def _result(self, targets, diff):
        """The result before anything is sent: sizes, what the ledger holds, warnings, the resolved selection."""
        plan = self.plan
        per_device = plan.tracking == TRACK_DEVICE
        skipped_unconfirmed = diff.unconfirmed if self.mode == NEW else []
        refused_before = diff.refused if self.mode != ALL else []
        result = {
            "changed": False,
            "idempotency_key": self.key,
            "data_encoding": plan.encoding,
            "message_size": dict(zip(("used", "limit", "unit"), plan.size)),
            "request_ids": [],
            "batches": [],
            "devices_requested": len(targets) if plan.devices is not None else None,
            "devices_resolved": None if self.resolved is None else len(self.resolved),
            "devices_sent": 0 if per_device else None,
            "devices_skipped": len(targets) - len(diff.to_send) if per_device else None,
            "devices_unconfirmed": [device_of(t) for t in skipped_unconfirmed if t != SELECTION],
            "devices_unknown": [device_of(t) for t in refused_before],
            "devices_inactive": None,
            "selection_unconfirmed": SELECTION in skipped_unconfirmed,
            "warnings": [],
        }
        if skipped_unconfirmed:
            result["warnings"].append(
                "%d target(s) have an unconfirmed send under idempotency key %s (no answer came, or a run stopped while sending); "
                "they are not sent again. Check them, then use resend_unconfirmed: true to send them once more" % (len(diff.unconfirmed), self.key)
            )
        if diff.in_flight and self.mode != ALL:
            result["warnings"].append(
                "%d target(s) are being sent right now by another run under idempotency key %s; this run leaves them to it" % (len(diff.in_flight), self.key)
            )
        if refused_before:
            result["warnings"].append(
                "%d device(s) were refused by ThingSpace under idempotency key %s, as not in the account (devices_unknown): %s; they are not sent "
                "again. Correct the list, or use force: true to send to them again" % (len(refused_before), self.key, _targets_text(refused_before))
            )
        if plan.devices is None and plan.tracking == TRACK_SELECTION and not plan.account:
            result["warnings"].append("Without account_name the selection was not checked for devices (allow_empty: true): ThingSpace sends to "
                                      "whatever it matches, possibly no device; give account_name to have it checked")
        return result

    def _empty(self, result):
        """A selection that matches no device: a failure before any SMS request, or with allow_empty nothing to send."""
        what = "%s matches no device of account %s" % (_describe(self.plan, None), self.plan.account)
        if not self.allow_empty:
            raise ThingSpaceError("T%s; nothing was sent. Check the filters (names match exactly; custom field values match whole values, ignoring "
                                  "case), or set allow_empty: true to accept a selection without devices" % what[1:])
        result.update(devices_sent=0, msg="Nothing to send: %s" % what)
        result["warnings"].append("T%s; nothing was sent (allow_empty: true)" % what[1:])
        return result

    def _ledger_notes(self, result, diff, settled):
        """What the ledger holds beside this send's own record, as result fields and warnings: the unconfirmed devices
        the callbacks ``settled``, the key under another API URL, the same message to a device under another key."""
        result["unconfirmed_resolved"] = [dict(device_of(target), request_id=request_id) for target, request_id in sorted(settled.items())]
        if settled:
            result["warnings"].append(
                "%d device(s) recorded unconfirmed under idempotency key %s %s settled as sent by callbacks the ledger holds for them (a request "
                "id it did not know, received after the claim); they are not sent again (unconfirmed_resolved lists them with the request id)"
                % (len(settled), self.key, "would be" if self.check_mode else "were"))
        others = self.ledger.other_scopes(self.scope, self.key)
        result["other_api_urls"] = [{"api_url": scope, "targets": count} for scope, count in others.items()]
        for scope, count in others.items():
            result["warnings"].append(
                "idempotency key %s also has %d target(s) recorded under another API URL, %s; this run reads only those under %s. If both URLs "
                "are the same service (localhost and 127.0.0.1, say), run with api_url %s, or the devices recorded there get the message again"
                % (self.key, count, scope, self.scope, scope))
        result["duplicates"] = []
        if self.duplicate_window > 0 and diff.to_send and self.plan.tracking == TRACK_DEVICE:
            since = time.time() - self.duplicate_window * 3600
            for other, targets, at in self.ledger.duplicates(self.scope, self.key, purpose(self.plan)["message"], diff.to_send, since):
                result["duplicates"].append({"idempotency_key": other, "devices": len(targets), "last_at": iso_time(at)})
                result["warnings"].append(
                    "%d device(s) this run %s to were sent the same message under another idempotency key, %s, within duplicate_window (%g h; "
                    "the last at %s); they get it again under %s. Check that this is meant; duplicate_window: 0 turns this check off"
                    % (len(targets), "would send" if self.check_mode else "sends", other, self.duplicate_window, iso_time(at), self.key))

    def _nothing_to_send(self, targets, diff):
        """The message of a run that has nothing to send (a run with force sends every target, so refused ones count here)."""
        refused = "ThingSpace refused %d device(s) as not in the account (devices_unknown)" % len(diff.refused)
        if diff.refused and len(diff.refused) == len(targets):
            return "Nothing to send: %s under idempotency key %s" % (refused, self.key)
        if self.plan.tracking == TRACK_DEVICE:
            subject, doubt = "the %d device(s)" % (len(targets) - len(diff.refused)), " (%d unconfirmed)" % len(diff.unconfirmed)
        else:
            subject, doubt = "this selection", " (unconfirmed)"
        return "Nothing to send: %s already got this message%s under idempotency key %s%s" % (
            subject, doubt if diff.unconfirmed else "", self.key, "; " + refused if diff.refused else "")

    def _preview(self, to_send, result):
        """Check mode: what would go out, in which batches; (result, failure). A device list is checked against the
        account's devices when account_name is given: a device it does not have fails the preview as it would fail
        the send, or with unknown_devices: skip is left out."""
        per_device = self.plan.tracking == TRACK_DEVICE
        if self.plan.devices is not None and not self.plan.account:
            result["warnings"].append("Check mode did not check the devices against an account (no account_name): a send fails if ThingSpace "
                                      "does not know one of them; give account_name to have them checked")
        elif self.plan.devices is not None:
            unknown = self._unknown(to_send)
            if unknown:
                result["devices_unknown"].extend(device_of(t) for t in unknown)
                what = "%d device(s) are not in account %s: %s" % (len(unknown), self.plan.account, _targets_text(unknown))
                unknown = set(unknown)
                if self.unknown_devices == UNKNOWN_FAIL:
                    chunks = list(_chunks(to_send, self.batch_size))
                    first = next(i for i, chunk in enumerate(chunks) if unknown.intersection(chunk))
                    result["msg"] = ("Check mode: %s (devices_unknown); a send would fail at batch %d of %d, which ThingSpace refuses whole. "
                                     "Remove them, or set unknown_devices: skip to send to the others" % (what, first + 1, len(chunks)))
                    return result, result["msg"]
                result["warnings"].append("%s (devices_unknown); a send leaves them out (unknown_devices: skip)" % what)
                to_send = [t for t in to_send if t not in unknown]
        count = len(to_send) if per_device else result["devices_resolved"]
        preview = to_send if per_device else [target_of(d) for d in self.resolved]
        result.update(changed=bool(to_send), devices_sent=count, msg="Check mode: would send to %s" % _describe(self.plan, count),
                      devices_preview=[device_of(t) for t in preview[:PREVIEW_LIMIT]],
                      batches=[{"index": i, "devices": len(chunk) if per_device else count, "status": "would_send"}
                               for i, chunk in enumerate(_chunks(to_send, self.batch_size))])
        return result, None

    def _device_list_request(self, **filters):
        from ansible_collections.thingspace.m2m.plugins.module_utils.models import DeviceListRequest

        return DeviceListRequest(account_name=self.plan.account, **filters)

    def _resolve(self):
        """The devices a filter selects, through the device list API (read-only, page after page), each as (kind, id)
        by the first kind of sms.RESOLVED_KIND_ORDER it has; fails at the end of the page that takes it past max_devices."""
        from ansible_collections.thingspace.m2m.plugins.module_utils.devices import device_state

        devices = {}
        states = self._states = {}
        pages = 0
        for page in self.client.iter_device_pages(self._device_list_request(**self._filters())):
            pages += 1
            for device in page.devices:
                ids = {entry.kind.lower(): entry.id for entry in device.device_ids}
                kind = next((kind for kind in RESOLVED_KIND_ORDER if ids.get(kind)), None)
                if kind is None:
                    continue
                try:
                    resolved = normalize_device({"kind": kind, "id": ids[kind]}, "the device list answer")
                except ValueError as exc:
                    raise ThingSpaceError("Unexpected content in %s" % exc)
                if resolved not in devices:
                    devices[resolved] = None
                    states[target_of(resolved)] = device_state(device)
            if self.max_devices is not None and len(devices) > self.max_devices:
                count = ("at least %d devices (in the first %d page(s) of the device list, which was not read further)" % (len(devices), pages)
                         if page.has_more_data else "%d devices" % len(devices))
                raise ThingSpaceError("max_devices: %s of account %s holds %s, more than max_devices %d; nothing was sent"
                                      % (_describe(self.plan, None), self.plan.account, count, self.max_devices))
        return list(devices)

    def _matches_a_device(self):
        """Whether a selection sent as a whole matches a device: the first page of the device list is enough (one request)."""
        first = next(self.client.iter_device_pages(self._device_list_request(**self._filters())))
        return bool(first.devices) or first.has_more_data

    def _unknown(self, targets):
        """The targets of a device list that the account does not have, from its device list (every page, read once,
        which also gives each device's state). Only the identifiers of the kinds this send's devices are named by are
        kept, so a list of a million MDNs holds one identifier per device, not each of its four; a later send of the
        run that names devices by another kind reads the device list again."""
        kinds = {target.split(":", 1)[0] for target in self.targets}
        if self._known is None or not kinds <= self._kinds:
            from ansible_collections.thingspace.m2m.plugins.module_utils.devices import device_state, is_inactive

            known = set()
            states = {}  # only the states _inactive reports: an active device's is not kept
            for device in self.client.iter_devices(self._device_list_request()):
                state = device_state(device)
                for entry in device.device_ids:
                    kind = entry.kind.lower()
                    if kind in kinds:
                        target = target_of((kind, spelling(kind, entry.id)))
                        if target not in known:  # the first device that lists an identifier gives its state
                            known.add(target)
                            if is_inactive(state):
                                states[target] = state
            self._known, self._states, self._kinds = known, states, kinds
        return [target for target in targets if target not in self._known]

    def _send(self, to_send, result):
        plan = self.plan
        per_device = plan.tracking == TRACK_DEVICE
        sent = 0
        failure = None
        chunks = list(_chunks(to_send, self.batch_size))
        for index, chunk in enumerate(chunks):
            try:
                claim_id, claimed = self.ledger.claim(self.scope, self.key, chunk, self.mode, purpose(plan))
            except ThingSpaceError as error:
                result["batches"].append({"index": index, "devices": 0 if per_device else None, "status": "failed", "error": error.message})
                failure = "Batch %d of %d was not sent: the ledger could not claim it: %s" % (index + 1, len(chunks), error.message)
                break
            batch = {"index": index, "devices": len(claimed) if per_device else None}
            result["batches"].append(batch)
            if per_device:
                result["devices_skipped"] += len(chunk) - len(claimed)  # claimed meanwhile by a concurrent run
            if not claimed:
                batch["status"] = "skipped"
                continue
            request_id, claimed, failure = self._send_batch(claim_id, claimed, batch, result, "Batch %d of %d" % (index + 1, len(chunks)))
            if failure:
                break
            if request_id is None:
                continue
            unrecorded = _record(self.ledger.settle, claim_id, SENT, request_id)
            batch.update(status="sent", request_id=request_id)
            result["request_ids"].append(request_id)
            result["changed"] = True
            sent += len(claimed)
            if unrecorded:
                batch["error"] = unrecorded
                failure = ("Batch %d of %d was sent (request id %s), but the ledger could not record it: %s. It stays pending there, so a "
                           "re-run reports it unconfirmed and does not send it again" % (index + 1, len(chunks), request_id, unrecorded))
                break
        if failure and index + 1 < len(chunks):
            failure += "; %d later batch(es) were not attempted, a re-run sends them" % (len(chunks) - index - 1)
        if per_device:
            result["devices_sent"] = sent
        elif result["request_ids"]:
            result["devices_sent"] = result["devices_resolved"]
        refused = ""
        if self.refused:
            refused = "; ThingSpace refused %d device(s), not in account %s (devices_unknown)" % (len(self.refused), plan.account)
            result["warnings"].append("ThingSpace refused %d device(s), not in account %s: %s. The ledger records them as refused under idempotency "
                                      "key %s, so a re-run does not send to them; correct the list, or use force: true to send to them again"
                                      % (len(self.refused), plan.account, _targets_text(sorted(self.refused)), self.key))
        if not failure and not result["request_ids"] and not self.refused:  # every batch was claimed by another run after this run's diff
            what = _describe(plan, len(to_send) if per_device else None)
            result["warnings"].append("This run sent nothing: another run under idempotency key %s claimed %s between this run's check of "
                                      "the ledger and its send; see that run's result" % (self.key, what))
            result["msg"] = "Nothing sent: another run under idempotency key %s claimed %s first" % (self.key, what)
            return result, None
        result["msg"] = failure or "Sent to %s in %d request(s)%s" % (_describe(plan, sent if per_device else result["devices_resolved"]),
                                                                      len(result["request_ids"]), refused)
        return result, failure

    def _send_batch(self, claim_id, claimed, batch, result, which):
        """POST /sms for a claimed batch: (request id, or None when no device of it is left to send; the targets it went
        to; failure or None). A device list's batch that ThingSpace refuses for a device it does not know fails naming
        the devices the account does not have, or with unknown_devices: skip goes out once more without them. Only
        a batch ThingSpace refused has devices recorded as refused."""
        skip = self.unknown_devices == UNKNOWN_SKIP
        while True:  # at most twice: the second request leaves out every device the account's device list lacks
            try:
                return self.client.send_sms(self._request(claimed)), claimed, None
            except ThingSpaceError as error:
                refused = self.plan.devices is not None and error.code_is(DEVICE_NOT_FOUND)
                unknown, why = self._identify(claimed) if refused else ([], "")
                if not (skip and unknown):
                    result["devices_unknown"].extend(device_of(t) for t in unknown)
                    return None, claimed, self._failed(error, claim_id, claimed, batch, result, which) + why
            claimed, failure = self._skip_unknown(claim_id, claimed, batch, result, which)
            if failure or not claimed:
                return None, claimed, failure

    def _skip_unknown(self, claim_id, claimed, batch, result, which):
        """Record the devices of a claimed batch that the account does not have as refused; (the rest, failure or None).
        A batch with no device left is released and reported ``refused``."""
        unknown = set(self._unknown(claimed))
        if not unknown:
            return claimed, None
        refused = [t for t in claimed if t in unknown]
        unrecorded = _record(self.ledger.refuse, claim_id, refused)
        if unrecorded:
            _record(self.ledger.release, claim_id)
            batch.update(status="failed", error=unrecorded)
            return claimed, "%s was not sent: the ledger could not record the %d device(s) ThingSpace refuses: %s" % (which, len(refused), unrecorded)
        self.refused.update(refused)
        result["devices_unknown"].extend(device_of(t) for t in refused)
        rest = [t for t in claimed if t not in unknown]
        batch.update(devices=len(rest), devices_unknown=len(refused))
        if not rest:
            _record(self.ledger.release, claim_id)
            batch["status"] = "refused"
        return rest, None

    def _identify(self, claimed):
        """The devices of a batch ThingSpace refused for a device it does not know that the account does not have, and
        what the failure says of them: (targets, text)."""
        if not self.plan.account:
            return [], ("; ThingSpace does not say which device it does not know: give account_name to have the devices it refuses named "
                        "(and unknown_devices: skip to send to the others)")
        try:
            unknown = self._unknown(claimed)
        except ThingSpaceError as error:
            return [], "; the device list of account %s, read to find the devices ThingSpace refused, failed too: %s" % (self.plan.account, error.message)
        if not unknown:
            return [], "; the device list of account %s has every device of this batch, so which one ThingSpace refused is not known" % self.plan.account
        return unknown, ("; %d device(s) of it are not in account %s: %s (devices_unknown). Remove them, or set unknown_devices: skip to send to "
                         "the others" % (len(unknown), self.plan.account, _targets_text(unknown)))

    def _failed(self, error, claim_id, claimed, batch, result, which):
        """Record a batch whose request failed: unknown when it may have been processed, else released; the failure
        message, beginning with ``which`` batch it was. A ledger that cannot record it leaves the batch pending
        (unconfirmed, never sent again on its own), and the message says so."""
        batch["error"] = error.message
        if not error.ambiguous:
            unrecorded = _record(self.ledger.release, claim_id)
            batch["status"] = "failed"
            failure = "%s failed, nothing of it was sent: %s" % (which, error.message)
            if unrecorded:
                failure += ("; the ledger could not forget it (%s), so a re-run reports it unconfirmed and resend_unconfirmed: true "
                            "sends it" % unrecorded)
            return failure
        unrecorded = _record(self.ledger.settle, claim_id, UNKNOWN)
        batch["status"] = "unconfirmed"
        if self.plan.tracking == TRACK_DEVICE:
            result["devices_unconfirmed"].extend(device_of(t) for t in claimed)
        else:
            result["selection_unconfirmed"] = True
        result["changed"] = True
        if unrecorded:
            recorded = ("The ledger could not record it (%s); it stays pending there, which a re-run also reports as unconfirmed and "
                        "does not send again" % unrecorded)
        else:
            recorded = "The ledger records it as unknown, so a re-run does not send it again"
        return "%s is unconfirmed: %s. %s; after checking the devices, re-run with resend_unconfirmed: true to send it once more" % (
            which, error.message, recorded)

    def _request(self, claimed):
        from ansible_collections.thingspace.m2m.plugins.module_utils.models import SendSmsRequest

        plan = self.plan
        selection = {"device_ids": [device_of(t) for t in claimed]} if plan.tracking == TRACK_DEVICE else self._filters()
        return SendSmsRequest(sms_message=plan.message, data_encoding=plan.encoding, account_name=plan.account, **selection)

    def _filters(self):
        """The filters as fields of SendSmsRequest and DeviceListRequest."""
        filters = self.plan.filters
        return {"group_name": filters["group_name"], "service_plan": filters["service_plan"], "custom_fields": filters["custom_fields"] or None}


def _record(write, *args):
    """Write a batch's outcome to the ledger; the error message when it cannot be written (the batch then stays
    pending under a claim whose run is gone: unconfirmed, never sent again on its own), else None."""
    try:
        write(*args)
    except ThingSpaceError as error:
        return error.message
    return None


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _describe(plan, count):
    if plan.devices is not None:
        return "%d device(s)" % count
    filters = plan.filters
    what = ["%s=%s" % (name, filters[name]) for name in ("group_name", "service_plan") if filters[name]]
    what += ["%s=%s" % (field["key"], field["value"]) for field in filters["custom_fields"]]
    return "the selection %s%s" % (", ".join(what), "" if count is None else " (%d devices)" % count)


def _targets_text(targets):
    """Devices named in a message: the first REPORTED_PROBLEMS ledger targets (``kind:id``), and how many more."""
    return first_of(list(targets))
