"""SMS rules: GSM-7 septets with the extension table, byte limits of the 8-bit encodings, identifiers, custom fields."""

from __future__ import annotations

import re

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils import sms


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Can you hear me now?", 20),
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", 42),
        ("{}", 4),
        ("€10 [x] ~ \\ | ^", 15 + 7),
        ("line1\nline2\r", 12),
    ],
)
def test_septets_count_extension_characters_twice(message, expected):
    assert sms.septets(message) == expected


def test_7bit_limit_is_160_septets():
    assert sms.message_size("a" * 160, "7-bit") == (160, 160, "septets")
    assert sms.message_size("{" * 80, "7-bit") == (160, 160, "septets")
    with pytest.raises(ValueError) as caught:
        sms.message_size("a" * 159 + "€", "7-bit")
    assert str(caught.value) == ("sms_message: 161 septets is over the 160-septet limit of data_encoding 7-bit (characters of the GSM-7 "
                                 "extension table such as { } [ ] ~ \\ | ^ € take two septets); messages are not concatenated")


def test_7bit_names_characters_outside_gsm7_and_suggests_utf8():
    with pytest.raises(ValueError) as caught:
        sms.message_size("Température ✓ 😀", "7-bit")
    assert str(caught.value) == ("sms_message: characters outside the GSM-7 alphabet cannot be sent with data_encoding 7-bit: '✓', '😀'; "
                                 "use data_encoding 8-bit-UTF-8 (140 bytes) or remove them")


@pytest.mark.parametrize("encoding", ["8-bit-UTF-8", "8-bit-DATA"])
def test_8bit_limits_count_utf8_bytes(encoding):
    assert sms.message_size("é" * 70, encoding) == (140, 140, "bytes")
    with pytest.raises(ValueError) as caught:
        sms.message_size("é" * 70 + "a", encoding)
    # No word of septets or the GSM-7 extension table: the limit is in bytes.
    assert str(caught.value) == "sms_message: 141 bytes is over the 140-byte limit of data_encoding %s; messages are not concatenated" % encoding


def test_8bit_ascii_refuses_non_ascii():
    assert sms.message_size("x" * 140, "8-bit-ASCII") == (140, 140, "bytes")
    assert sms.message_size("\x7f", "8-bit-ASCII") == (1, 140, "bytes")  # DEL is the last ASCII character
    with pytest.raises(ValueError) as caught:
        sms.message_size("café \x80 é", "8-bit-ASCII")
    assert str(caught.value) == ("sms_message: characters outside ASCII cannot be sent with data_encoding 8-bit-ASCII: '\\x80', 'é'; "
                                 "use data_encoding 8-bit-UTF-8")


def test_empty_message_and_unknown_encoding():
    with pytest.raises(ValueError, match="sms_message: must not be empty"):
        sms.message_size("", "7-bit")
    with pytest.raises(ValueError) as caught:
        sms.message_size("hi", "16-bit")
    assert str(caught.value) == "data_encoding: '16-bit' is not one of 7-bit, 8-bit-ASCII, 8-bit-UTF-8, 8-bit-DATA"


@pytest.mark.parametrize(
    ("kind", "ident"),
    [
        ("iccid", "89148000000800139708"),
        ("ICCID", "891480000008001397"),
        ("imei", "990000862471854"),
        ("imei", "9900008624718541"),
        ("mdn", "5551234567"),
        ("msisdn", "15551234567"),
        ("meid", "A10000009296F2"),
        ("esn", "09623489171"),
        ("imsi", "310410123456789"),
        ("eid", "8" * 32),
    ],
)
def test_valid_identifiers(kind, ident):
    assert sms.normalize_device({"kind": kind, "id": ident}) == (kind.lower(), ident)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ({"kind": "phone", "id": "5551234567"}, r"^devices\.kind: 'phone' is not a device kind; use one of eid, esn, iccid, imei, imsi, mdn, "
                                                r"meid, msisdn$"),
        ({"kind": "mdn", "id": "555123456"}, r"^devices\.id: '555123456' is not a valid mdn: expected 10 decimal digits$"),
        ({"kind": "iccid", "id": "8914800000080013970A"}, r"not a valid iccid: expected 18 to 20 decimal digits"),
        ({"kind": "imei", "id": "12345"}, r"not a valid imei: expected 15 or 16 decimal digits"),
        ({"kind": "meid", "id": "A10000009296G2"}, r"not a valid meid: expected 14 hexadecimal digits"),
        ({"kind": "esn", "id": "8F3A21B0"}, r"not a valid esn: expected 11 decimal digits"),
        ({"kind": "msisdn", "id": "5551234567"}, r"not a valid msisdn: expected 11 to 15 decimal digits"),
        ({"kind": "mdn"}, r"^devices: each entry has exactly the keys 'kind' and 'id', both set; got \{'kind': 'mdn'\}$"),
        ({"kind": "mdn", "id": "5551234567", "imei": "x"}, r"each entry has exactly the keys 'kind' and 'id'"),
        ({"kind": "mdn", "id": ""}, r"each entry has exactly the keys 'kind' and 'id', both set"),
    ],
)
def test_invalid_identifiers_name_field_and_rule(device, message):
    with pytest.raises(ValueError, match=message):
        sms.normalize_device(device)


def test_device_list_is_deduplicated_in_order_and_names_the_index():
    devices = [{"kind": "MDN", "id": "5551234567"}, {"kind": "iccid", "id": "89148000000800139708"}, {"kind": "mdn", "id": "5551234567"}]
    assert sms.normalize_devices(devices) == [("mdn", "5551234567"), ("iccid", "89148000000800139708")]
    with pytest.raises(ValueError, match=r"devices\[1\].id"):
        sms.normalize_devices([devices[0], {"kind": "mdn", "id": "1"}])


def test_custom_fields():
    assert sms.check_custom_fields({"CustomField1": "West", "CustomField5": 7}) == [
        {"key": "CustomField1", "value": "West"},
        {"key": "CustomField5", "value": "7"},
    ]
    with pytest.raises(ValueError, match=r"^custom_fields: 'CustomField6' is not a custom field name; use CustomField1, CustomField2, "
                                         r"CustomField3, CustomField4, CustomField5$"):
        sms.check_custom_fields({"CustomField6": "x"})
    for empty in ("", None):
        with pytest.raises(ValueError, match=r"^custom_fields\.CustomField2: the value must not be empty \(values match exactly, without "
                                             r"wildcards\)$"):
            sms.check_custom_fields({"CustomField1": "x", "CustomField2": empty})


def _in_digits(number, zero):
    """``number`` written with the digits of another script, whose zero is code point ``zero``."""
    return "".join(chr(zero + int(digit)) for digit in number)


@pytest.mark.parametrize(
    ("kind", "ident"),
    [
        ("mdn", _in_digits("5551234567", 0x0660)),  # Arabic-Indic
        ("mdn", "555123456" + _in_digits("7", 0x06F0)),  # one Extended Arabic-Indic digit
        ("imei", _in_digits("990000862471854", 0x0966)),  # Devanagari
        ("iccid", _in_digits("89148000000800139708", 0xFF10)),  # full-width
        ("esn", "0962348917" + _in_digits("1", 0x0660)),
    ],
)
def test_identifiers_take_ascii_digits_only(kind, ident):
    with pytest.raises(ValueError, match=r"devices.id: .* is not a valid %s: expected " % kind):
        sms.normalize_device({"kind": kind, "id": ident})


@pytest.mark.parametrize("message", [" ", "   ", "\n", " \r\n\t "])
def test_a_message_of_only_whitespace_is_refused(message):
    with pytest.raises(ValueError, match=r"^sms_message: must not be empty or only whitespace$"):
        sms.message_size(message, "7-bit")


@pytest.mark.parametrize("name", [" west", "west ", "\twest", "west\n", " "])
def test_a_name_with_whitespace_around_it_is_refused(name):
    with pytest.raises(ValueError, match=r"^group_name: %s has leading or trailing whitespace; remove it \(names are matched exactly\)$"
                       % re.escape(repr(name))):
        sms.check_name("group_name", name)
    sms.check_name("group_name", "west sensors")
    sms.check_name("group_name", None)
