# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The account's devices as Ansible sees them: which device states are inactive, a device's facts (the
``thingspace_*`` host variables of the inventory plugin, the entries of vz_device_info), its host name, its default
groups, and its last SMS and reply from the ledger. The inventory plugin (plugins/inventory/devices.py),
vz_device_info and vz_sms_send read these; none of it makes a request.
"""

from __future__ import annotations

import json
import re

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import ACCEPTED, UNCONFIRMED
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import REFUSED, SENT, iso_time
from ansible_collections.thingspace.m2m.plugins.module_utils.sms import RESOLVED_KIND_ORDER, check_custom_fields, check_name, spelling

# The one state in which a device gets SMS; every other vendor state (suspend, deactive, pre-active, pending
# activation...) answers "Undelivered".
ACTIVE = "active"
# The identifier kinds that name a host, first present first (option hostnames).
DEFAULT_HOSTNAMES = ("iccid", "imei", "meid", "esn", "mdn")
HOSTVAR_PREFIX = "thingspace_"
# What the ledger's send state says of a device's last SMS when no delivery callback names it.
_SEND_DELIVERY = {SENT: ACCEPTED, REFUSED: REFUSED}
# The server-side filters of the device list (option filters of the inventory plugin).
FILTERS = ("group_name", "service_plan", "custom_fields", "state")
# How many devices a warning names.
REPORTED = 20
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def is_inactive(state):
    """Whether a device in ``state`` (as the device list gives it, any case) gets no SMS; a device without a
    state is not counted inactive, since nothing says so."""
    return state is not None and state.strip().lower() != ACTIVE


def device_state(device):
    """The state of a models.Device or models.DeviceState as the device list gives it (its first carrier information),
    or None."""
    return device.carrier_informations[0].state if device.carrier_informations else None


def identifiers(device):
    """kind → id of a models.Device, kinds in lower case and hexadecimal identifiers in upper case (the ledger's
    spelling); the first id of a kind counts."""
    ids = {}
    for entry in device.device_ids:
        kind = entry.kind.strip().lower()
        ids.setdefault(kind, spelling(kind, entry.id))
    return ids


def device_facts(device):
    """The facts of a models.Device: ``device_ids`` (kind → id), ``account``, ``state``, ``service_plan``,
    ``groups``, ``custom_fields`` (key → value) and ``ip_address`` (None when the vendor gives none)."""
    carrier = device.carrier_informations[0] if device.carrier_informations else None
    return {
        "device_ids": identifiers(device),
        "account": device.account_name,
        "state": carrier.state if carrier else None,
        "service_plan": carrier.service_plan if carrier else None,
        "groups": list(device.group_names),
        "custom_fields": {field.key: field.value for field in device.custom_fields},
        "ip_address": device.ip_address,
    }


def host_name(facts, hostnames=DEFAULT_HOSTNAMES):
    """The id of the first kind of ``hostnames`` the device has, or None."""
    ids = facts["device_ids"]
    return next((ids[kind] for kind in hostnames if ids.get(kind)), None)


def host_vars(facts):
    """The ``thingspace_*`` host variables of a device but the ledger's (ledger_vars); ``thingspace_ip_address`` only
    where the vendor gives one."""
    found = {HOSTVAR_PREFIX + name: value for name, value in facts.items() if name != "ip_address"}
    if facts["ip_address"]:
        found[HOSTVAR_PREFIX + "ip_address"] = facts["ip_address"]
    return found


def ledger_vars(variables, activity):
    """``thingspace_last_sms`` and ``thingspace_last_reply`` of the host whose host_vars are ``variables``, from
    ``activity`` (a LedgerActivity)."""
    ids = variables[HOSTVAR_PREFIX + "device_ids"]
    return {HOSTVAR_PREFIX + "last_sms": activity.last_sms(ids), HOSTVAR_PREFIX + "last_reply": activity.last_reply(ids)}


def safe_group_name(name):
    """``name`` as an Ansible group name: every character but letters, digits and ``_`` becomes ``_``."""
    return _UNSAFE.sub("_", name)


def default_groups(facts, prefix=""):
    """The groups a device joins by default: ``<prefix>group_<device group>`` for each device group and
    ``<prefix>state_<state>``, sanitized."""
    names = ["group_" + group for group in facts["groups"]]
    if facts["state"]:
        names.append("state_" + facts["state"].strip().lower())
    return [safe_group_name(prefix + name) for name in names]


def send_entry(ids):
    """The ``{kind, id}`` vz_sms_send's ``devices`` takes for a device of kind → id: the identifier a send to a selection
    resolves it to (sms.RESOLVED_KIND_ORDER), so both record it under the same ledger target; None without one."""
    kind = next((kind for kind in RESOLVED_KIND_ORDER if ids.get(kind)), None)
    return None if kind is None else {"kind": kind, "id": ids[kind]}


def device_list_request(account, filters=None):
    """The models.DeviceListRequest of ``account`` and the server-side ``filters`` (``group_name``, ``service_plan``,
    ``custom_fields`` as CustomFieldN → value, ``state``); ThingSpaceError naming a bad filter, before any request."""
    from ansible_collections.thingspace.m2m.plugins.module_utils.models import DeviceListRequest

    filters = dict(filters or {})
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise ThingSpaceError("filters: %s %s not a filter; use %s" % (", ".join(unknown), "is" if len(unknown) == 1 else "are", ", ".join(FILTERS)))
    try:
        for option in ("account_name", "group_name", "service_plan"):
            check_name(option, account if option == "account_name" else filters.get(option))
        custom_fields = check_custom_fields(filters.get("custom_fields"))
    except ValueError as exc:
        raise ThingSpaceError(str(exc))
    return DeviceListRequest(account_name=account, group_name=filters.get("group_name"), service_plan=filters.get("service_plan"),
                             custom_fields=custom_fields or None, current_state=filters.get("state"))


def read_devices(client, account, filters=None):
    """The facts (device_facts) of every device of ``account`` the ``filters`` select, every page of the device list."""
    return [device_facts(device) for device in client.iter_devices(device_list_request(account, filters))]


def inventory_hosts(devices, hostnames=DEFAULT_HOSTNAMES, group_prefix=""):
    """(hosts, nameless) of device facts: hosts as (name, host_vars, default groups), in the device list's order;
    nameless the devices without an identifier of a ``hostnames`` kind (their ``device_ids``)."""
    hosts = []
    nameless = []
    for facts in devices:
        name = host_name(facts, hostnames)
        if name is None:
            nameless.append(facts["device_ids"])
        else:
            hosts.append((name, host_vars(facts), default_groups(facts, group_prefix)))
    return hosts, nameless


def cache_entry(hosts, nameless, hostnames, group_prefix):
    """What the inventory cache keeps of a device list (JSON): the hosts and nameless devices of inventory_hosts, and
    the options that shaped them, so that a cache hit adds the hosts without shaping them again."""
    return {"hostnames": list(hostnames), "group_prefix": group_prefix, "hosts": hosts, "nameless": nameless}


def cached_hosts(entry, hostnames, group_prefix):
    """(hosts, nameless) of a cache_entry shaped with these ``hostnames`` and ``group_prefix``; None for an entry of
    other options or of another shape (an earlier version kept the device facts), which is a cache miss."""
    if not isinstance(entry, dict) or entry.get("hostnames") != list(hostnames) or entry.get("group_prefix") != group_prefix:
        return None
    return entry["hosts"], entry["nameless"]


def nameless_warning(nameless, hostnames):
    """The warning for devices that no identifier of ``hostnames`` names (they are not in the inventory)."""
    shown = ", ".join(json.dumps(ids, sort_keys=True) for ids in nameless[:REPORTED])
    more = " and %d more" % (len(nameless) - REPORTED) if len(nameless) > REPORTED else ""
    return ("%d device(s) have no identifier of the kinds in hostnames (%s), so they are not in the inventory: %s%s; add one of their kinds "
            "to hostnames" % (len(nameless), ", ".join(hostnames), shown, more))


class LedgerActivity:
    """The last SMS and the last reply of every device the ledger knows, read once (a few queries for any fleet).

    A device's last SMS is the latest send recorded for any of its identifiers, under any key and API URL: its key,
    time and delivery state (the state of a delivery callback for it, else ``accepted`` when ThingSpace took the
    request, ``unconfirmed`` while the send is not known to be sent, ``refused`` when ThingSpace refused the device).
    A device's last reply is the latest device SMS (a callback or a history read) that names one of its identifiers."""

    def __init__(self, ledger):
        store = ledger.store
        self._sends = {}
        for key, target, state, request_id, at in store.rows("SELECT k.key, s.target, s.state, s.request_id, s.updated_at FROM sends s "
                                                             "JOIN send_keys k ON k.id = s.key_id"):
            if target not in self._sends or at > self._sends[target][3]:
                self._sends[target] = (key, state, request_id, at)
        self._deliveries = {}
        for request_id, state, aliases in store.rows("SELECT request_id, state, aliases FROM deliveries"):
            for alias in json.loads(aliases):
                self._deliveries[request_id, alias] = state
        self._replies = {}
        for (event,) in store.rows("SELECT event FROM callbacks WHERE type = 'device_sms'"):
            event = json.loads(event)
            reply = {"text": event.get("message"), "time": event.get("sent_at") or event["received_at"], "received_at": event["received_at"]}
            for device in event.get("devices") or ():
                target = "%s:%s" % (device["kind"], device["id"])
                if target not in self._replies or reply["received_at"] > self._replies[target]["received_at"]:
                    self._replies[target] = reply

    def last_sms(self, ids):
        """``{key, time, state}`` of the device's last send, or None."""
        targets = ["%s:%s" % item for item in ids.items()]
        found = [(self._sends[target][3], target) for target in targets if target in self._sends]
        if not found:
            return None
        _at, target = max(found)
        key, state, request_id, at = self._sends[target]
        delivery = next((self._deliveries[request_id, alias] for alias in targets if (request_id, alias) in self._deliveries), None)
        return {"key": key, "time": iso_time(at), "state": delivery or _SEND_DELIVERY.get(state, UNCONFIRMED)}

    def last_reply(self, ids):
        """``{text, time}`` of the device's last SMS to the account, or None."""
        found = [self._replies[target] for target in ("%s:%s" % item for item in ids.items()) if target in self._replies]
        if not found:
            return None
        reply = max(found, key=lambda entry: entry["received_at"])
        return {"text": reply["text"], "time": reply["time"]}


def device_info(client, account, filters=None, devices=None, count_only=False, activity=None):
    """vz_device_info's result: the devices of ``account`` that ``filters`` select (every page of the device list) and,
    with ``devices`` (normalized ``(kind, id)`` pairs), only those; ``count``, ``states`` (state → count), ``inactive``
    (how many are not active), ``devices`` (facts, with ``last_sms`` and ``last_reply`` from ``activity``; not with
    ``count_only``) and ``devices_missing`` (the listed devices the selection lacks)."""
    wanted = None if devices is None else {"%s:%s" % device for device in devices}
    found, missing = [], set(wanted or ())
    count, states, inactive = 0, {}, 0
    states_only = count_only and wanted is None
    for page in client.iter_device_pages(device_list_request(account, filters), states_only=states_only):
        for device in page.devices:
            if not states_only:
                facts = device_facts(device)
                targets = {"%s:%s" % item for item in facts["device_ids"].items()}
                if wanted is not None and not targets & wanted:
                    continue
                missing -= targets
                if not count_only:
                    if activity is not None:
                        facts.update(last_sms=activity.last_sms(facts["device_ids"]), last_reply=activity.last_reply(facts["device_ids"]))
                    found.append(facts)
                state = facts["state"]
            else:
                state = device_state(device)
            count += 1
            states[state] = states.get(state, 0) + 1
            inactive += is_inactive(state)
    result = {"changed": False, "count": count, "states": {str(state): number for state, number in states.items()}, "inactive": inactive,
              "devices_missing": [{"kind": kind, "id": ident} for kind, ident in devices or () if "%s:%s" % (kind, ident) in missing]}
    if not count_only:
        result["devices"] = found
    per_state = ": " + ", ".join("%d %s" % (n, s) for s, n in sorted(result["states"].items())) if count else ""
    not_found = "; %d listed device(s) not found" % len(result["devices_missing"]) if result["devices_missing"] else ""
    result["msg"] = "%d device(s)%s%s" % (count, per_state, not_found)
    return result


def read_activity(location):
    """The LedgerActivity of the ledger at ``location`` (as ``Ledger`` takes it), read-only; ThingSpaceError when there is
    no ledger there, which is never created."""
    from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger

    ledger = Ledger(location, read_only=True)
    try:
        if not ledger.exists:
            raise ThingSpaceError("No ledger at %s (ledger_path / ledger_url): nothing was ever recorded there; check the option, or leave it "
                                  "out to read the devices without their last SMS and reply" % ledger.where)
        return LedgerActivity(ledger)
    finally:
        ledger.close()
