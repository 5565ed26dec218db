# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rules for what can be sent: message length per encoding, device identifiers, custom field names.

Every check raises ValueError with a message that names the field and the rule; the modules run them
before any request goes out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ENCODINGS = ("7-bit", "8-bit-ASCII", "8-bit-UTF-8", "8-bit-DATA")
SEPTET_LIMIT = 160
BYTE_LIMIT = 140
MAX_DEVICES_PER_REQUEST = 10000

# GSM 03.38 default alphabet (one septet each; the escape code 0x1B is not a character of its own)
# and its extension table (escape + one septet = two septets each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

# Identifier syntax per device kind, with the rule as users read it ([0-9], not \d, which takes any script's digits).
DEVICE_KINDS = {
    "eid": (r"[0-9]{32}", "32 decimal digits"),
    "esn": (r"[0-9]{11}", "11 decimal digits"),
    "iccid": (r"[0-9]{18,20}", "18 to 20 decimal digits"),
    "imei": (r"[0-9]{15,16}", "15 or 16 decimal digits"),
    "imsi": (r"[0-9]{6,15}", "6 to 15 decimal digits"),
    "mdn": (r"[0-9]{10}", "10 decimal digits"),
    "meid": (r"[0-9A-Fa-f]{14}", "14 hexadecimal digits"),
    "msisdn": (r"[0-9]{11,15}", "11 to 15 decimal digits"),
}
# Kinds whose identifiers are hexadecimal (the ledger and the API get them in upper case).
HEX_KINDS = ("meid",)
# The identifier a device of a selection (vz_sms_send with filters, an inventory host) is sent and recorded by: the
# first of its kinds in this order (the SIM's ICCID first, as it survives a number change).
RESOLVED_KIND_ORDER = ("iccid", "eid", "imei", "meid", "esn", "mdn", "msisdn", "imsi")
_ENTRY_KEYS = frozenset(("kind", "id"))
_DEVICE_PATTERNS = {kind: re.compile(pattern) for kind, (pattern, _rule) in DEVICE_KINDS.items()}
# A ledger target (``kind:id``) as normalize_device spells it: kind in lower case, identifier stripped, hexadecimal in upper case.
_TARGET = re.compile("|".join("%s:%s" % (kind, pattern.replace("a-f", "") if kind in HEX_KINDS else pattern)
                              for kind, (pattern, _rule) in DEVICE_KINDS.items()))

CUSTOM_FIELD_KEYS = tuple("CustomField%d" % n for n in range(1, 6))
# How many bad entries (or refused devices) a message names; it counts the others.
REPORTED_PROBLEMS = 20


def septets(message):
    """GSM-7 septets needed for ``message``; ValueError naming the characters GSM-7 cannot carry."""
    count = 0
    outside = []
    for char in message:
        if char in GSM7_BASIC:
            count += 1
        elif char in GSM7_EXTENSION:
            count += 2
        elif char not in outside:
            outside.append(char)
    if outside:
        shown = ", ".join(repr(c) for c in outside)
        raise ValueError(
            "sms_message: characters outside the GSM-7 alphabet cannot be sent with data_encoding 7-bit: %s; "
            "use data_encoding 8-bit-UTF-8 (140 bytes) or remove them" % shown
        )
    return count


def message_size(message, encoding):
    """Check ``message`` against the limit of ``encoding``; return (units used, limit, unit name)."""
    if encoding not in ENCODINGS:
        raise ValueError("data_encoding: %r is not one of %s" % (encoding, ", ".join(ENCODINGS)))
    if not message.strip():
        raise ValueError("sms_message: must not be empty or only whitespace")
    if encoding == "7-bit":
        used, limit, unit = septets(message), SEPTET_LIMIT, "septets"
    else:
        if encoding == "8-bit-ASCII":
            outside = sorted({c for c in message if ord(c) > 127})
            if outside:
                raise ValueError(
                    "sms_message: characters outside ASCII cannot be sent with data_encoding 8-bit-ASCII: %s; "
                    "use data_encoding 8-bit-UTF-8" % ", ".join(repr(c) for c in outside)
                )
        used, limit, unit = len(message.encode("utf-8")), BYTE_LIMIT, "bytes"
    if used > limit:
        extra = " (characters of the GSM-7 extension table such as { } [ ] ~ \\ | ^ € take two septets)" if unit == "septets" else ""
        raise ValueError(
            "sms_message: %d %s is over the %d-%s limit of data_encoding %s%s; messages are not concatenated"
            % (used, unit, limit, unit[:-1], encoding, extra)
        )
    return used, limit, unit


def spelling(kind, ident):
    """An identifier of kind ``kind`` (lower case) as the ledger spells it: stripped, and in upper case for the
    hexadecimal kinds, so the ledger knows the device whatever the case given."""
    ident = ident.strip()
    return ident.upper() if kind in HEX_KINDS else ident


def normalize_device(device, where="devices"):
    """Validate one ``{kind, id}`` entry; return ``(kind, id)`` with the kind in lower case."""
    if not isinstance(device, dict) or device.keys() != _ENTRY_KEYS or not device["kind"] or not device["id"]:
        raise ValueError("%s: each entry has exactly the keys 'kind' and 'id', both set; got %r" % (where, device))
    kind = str(device["kind"]).strip().lower()
    ident = spelling(kind, str(device["id"]))
    if kind not in DEVICE_KINDS:
        raise ValueError("%s.kind: %r is not a device kind; use one of %s" % (where, device["kind"], ", ".join(sorted(DEVICE_KINDS))))
    if not _DEVICE_PATTERNS[kind].fullmatch(ident):
        raise ValueError("%s.id: %r is not a valid %s: expected %s" % (where, ident, kind, DEVICE_KINDS[kind][1]))
    return kind, ident


def normalize_devices(devices, option="devices"):
    """Validate a device list; return unique ``(kind, id)`` pairs in their first order. ``option`` names the list in errors,
    which name every bad entry (the first REPORTED_PROBLEMS, then how many more)."""
    return list(Devices(device_targets(devices, option)))


def device_targets(devices, option="devices"):
    """normalize_devices for a list read once (any iterable): the unique devices as ledger targets (``kind:id``), one
    string each, in their first order; the errors are normalize_devices'."""
    seen, problems = {}, []
    target_syntax = _TARGET.fullmatch
    for index, device in enumerate(devices):
        # An entry already in the ledger's spelling is its target as it is: the check of most entries, without normalize_device.
        if isinstance(device, dict) and len(device) == 2:
            kind, ident = device.get("kind"), device.get("id")
            if isinstance(kind, str) and isinstance(ident, str):
                target = kind + ":" + ident
                if target_syntax(target):
                    seen[target] = None
                    continue
        try:
            kind, ident = normalize_device(device, option)
        except ValueError:  # again, to name the entry: building that name for every entry costs more than the check
            try:
                normalize_device(device, "%s[%d]" % (option, index))
            except ValueError as exc:
                problems.append(str(exc))
            continue
        seen[kind + ":" + ident] = None
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        raise ValueError("%s: %d entries are not valid: %s" % (option, len(problems), first_of(problems, "; ")))
    return list(seen)


class Devices(Sequence):
    """A device list held as ledger targets (``kind:id`` strings, device_targets), read as ``(kind, id)`` pairs: one
    string per device instead of a pair of two, for lists of a million devices."""

    __slots__ = ("targets",)

    def __init__(self, targets):
        self.targets = targets

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return tuple(self.targets[index].split(":", 1))

    def __iter__(self):
        for target in self.targets:
            yield tuple(target.split(":", 1))


def first_of(items, separator=", "):
    """The first REPORTED_PROBLEMS of ``items`` joined, and how many more there are."""
    shown = separator.join(items[:REPORTED_PROBLEMS])
    return shown if len(items) <= REPORTED_PROBLEMS else "%s%sand %d more" % (shown, separator, len(items) - REPORTED_PROBLEMS)


def check_name(option, name):
    """Refuse a name (account, device group, service plan) with spaces around it: the API matches names exactly,
    and stripping them would hide the mistake that put them there."""
    if name is not None and name != name.strip():
        raise ValueError("%s: %r has leading or trailing whitespace; remove it (names are matched exactly)" % (option, name))


def check_custom_fields(custom_fields):
    """Validate a CustomFieldN → value mapping; return it as the API's ``[{key, value}]`` list."""
    pairs = []
    for key, value in (custom_fields or {}).items():
        if key not in CUSTOM_FIELD_KEYS:
            raise ValueError("custom_fields: %r is not a custom field name; use %s" % (key, ", ".join(CUSTOM_FIELD_KEYS)))
        if value is None or str(value) == "":
            raise ValueError("custom_fields.%s: the value must not be empty (values match exactly, without wildcards)" % key)
        pairs.append({"key": key, "value": str(value)})
    return pairs
