"""The service's input rules: SMS length per data encoding, device kinds and identifier formats,
callback service names and listener ports."""

import re

# GSM 03.38 default alphabet: one septet each (ESC 0x1B is not a character of its own).
GSM_BASIC = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
# GSM 03.38 extension table: ESC + one septet each.
GSM_EXTENSION = set("^{}\\[~]|€\f")

DATA_ENCODINGS = ("7-bit", "8-bit-ASCII", "8-bit-UTF-8", "8-bit-DATA")
DEFAULT_ENCODING = "7-bit"
SEPTET_LIMIT = 160
BYTE_LIMIT = 140

KIND_PATTERNS = {
    "esn": re.compile(r"[0-9]{11}"),
    "iccid": re.compile(r"[0-9]{18,20}"),
    "imei": re.compile(r"[0-9]{15,16}"),
    "imsi": re.compile(r"[0-9]{6,15}"),
    "mdn": re.compile(r"[0-9]{10}"),
    "meid": re.compile(r"[0-9A-Fa-f]{14}"),
    "msisdn": re.compile(r"[0-9]{11,15}"),
    "eid": re.compile(r"[0-9]{32}"),
}
KINDS = tuple(KIND_PATTERNS)
# Kinds whose identifiers are hexadecimal, compared without regard to case.
HEX_KINDS = ("meid",)

# Device states as the vendor names them (carrierInformations[].state, the device list's currentState);
# only an active device gets an SMS. "suspended", the emulator's earlier word, reads as "suspend".
DEVICE_STATES = ("active", "suspend", "deactive", "pre-active", "pending activation")
STATE_ALIASES = {"suspended": "suspend"}


def device_state(name: str) -> str:
    """The state name as the emulator keeps it: lower case, aliases resolved."""
    name = name.strip().lower()
    return STATE_ALIASES.get(name, name)


CUSTOM_FIELD_NAMES = tuple(f"CustomField{n}" for n in range(1, 6))

# The callback services the vendor documents; tests/vendor_rules.yml gives the source of each.
SERVICE_NAMES = frozenset(
    {
        "AlertService",
        "CarrierService",
        "DevicePRLInformation",
        "DeviceProfileService",
        "DeviceService",
        "DeviceSuspensionStatus",
        "DeviceUsage",
        "EnhancedConnectivityService",
        "ExternalProvisioningChanges",
        "NiddService",
        "PromoChanges",
        "ResumeTrackingNotification",
        "SMSDeliveryConfirmation",
        "StateService",
    }
)
MAX_DEVICES = 10_000  # devices one POST /sms may name

ALLOWED_PORTS = frozenset({80, 443, *range(9001, 9007), *range(50551, 50560), *range(28200, 28221)})


class UnsupportedCharacter(ValueError):
    """The message holds a character that its data encoding cannot carry."""


def message_units(message: str, encoding: str) -> int:
    """Septets (7-bit) or bytes (8-bit encodings) the message takes; raises UnsupportedCharacter."""
    if encoding == "7-bit":
        units = 0
        for char in message:
            if char in GSM_BASIC:
                units += 1
            elif char in GSM_EXTENSION:
                units += 2
            else:
                raise UnsupportedCharacter(f"character {char!r} is not in the GSM 03.38 alphabet")
        return units
    if encoding == "8-bit-ASCII":
        try:
            return len(message.encode("ascii"))
        except UnicodeEncodeError as exc:
            raise UnsupportedCharacter(f"character {message[exc.start]!r} is not ASCII") from None
    return len(message.encode("utf-8"))


def unit_limit(encoding: str) -> int:
    return SEPTET_LIMIT if encoding == "7-bit" else BYTE_LIMIT


def valid_identifier(kind: str, identifier: str) -> bool:
    """Whether identifier is well formed for kind (a lowercase kind from KINDS)."""
    return KIND_PATTERNS[kind].fullmatch(identifier) is not None


def identifier_key(kind: str, identifier: str) -> tuple:
    """The lookup key of an identifier: lowercase kind, hexadecimal kinds in upper case."""
    kind = kind.lower()
    return (kind, identifier.upper() if kind in HEX_KINDS else identifier)


def callback_kind(kind: str) -> str:
    """The kind as callbacks spell it: Iccid, Imei, Mdn, Msisdn."""
    return kind.capitalize()
