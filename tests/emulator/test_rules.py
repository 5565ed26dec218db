"""SMS length per data encoding and identifier normalisation."""

import pytest

from thingspace_emulator.rules import UnsupportedCharacter, identifier_key, message_units


@pytest.mark.parametrize(
    ("message", "encoding", "units"),
    [
        ("hello", "7-bit", 5),
        ("{}[]~\\|^€\f", "7-bit", 20),
        ("ÄÖÑÜ§¿äöñüà@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¡¤\r\n", "7-bit", 44),
        ("hello", "8-bit-ASCII", 5),
        ("€", "8-bit-UTF-8", 3),
        ("é", "8-bit-DATA", 2),
    ],
)
def test_units(message, encoding, units):
    assert message_units(message, encoding) == units


@pytest.mark.parametrize(("message", "encoding"), [("`", "7-bit"), ("ç", "7-bit"), ("€", "8-bit-ASCII")])
def test_characters_an_encoding_cannot_carry(message, encoding):
    with pytest.raises(UnsupportedCharacter):
        message_units(message, encoding)


def test_identifier_key_ignores_case_of_hex_kinds_only():
    assert identifier_key("MEID", "a1b2") == ("meid", "A1B2")
    assert identifier_key("Esn", "27000000002") == ("esn", "27000000002")
    assert identifier_key("ICCID", "8914") == ("iccid", "8914")
