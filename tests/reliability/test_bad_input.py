"""Every bad input of the modules' table fails before any request: one play runs them all against a fresh
emulator, each task must fail naming the field and the rule, and the emulator's request log stays empty."""

from __future__ import annotations

from harness import ACCOUNT, CREDENTIAL_ARGS, device, task

WAVE = [device(0), device(1)]
SEND = {"account_name": ACCOUNT, "devices": WAVE, "sms_message": "PING"}
LISTENER = "http://127.0.0.1:9001/callbacks"

# (case, module, arguments, expected part of the message). Credentials are added to every case but those
# in WITHOUT_CREDENTIALS.
NO_DEVICES = {"account_name": ACCOUNT, "sms_message": "PING"}
CASES = [
    ("empty_message", "vz_sms_send", dict(SEND, sms_message=""),
     "sms_message: must not be empty"),
    ("gsm7_161_septets", "vz_sms_send", dict(SEND, sms_message="a" * 161),
     "161 septets is over the 160-septet limit of data_encoding 7-bit"),
    ("gsm7_extension_chars", "vz_sms_send", dict(SEND, sms_message="€" * 81),
     "162 septets is over the 160-septet limit"),
    ("ascii_141_bytes", "vz_sms_send", dict(SEND, sms_message="a" * 141, data_encoding="8-bit-ASCII"),
     "141 bytes is over the 140-byte limit"),
    ("utf8_142_bytes", "vz_sms_send", dict(SEND, sms_message="é" * 71, data_encoding="8-bit-UTF-8"),
     "142 bytes is over the 140-byte limit of data_encoding 8-bit-UTF-8"),
    ("outside_gsm7", "vz_sms_send", dict(SEND, sms_message="Привет"),
     "characters outside the GSM-7 alphabet cannot be sent with data_encoding 7-bit"),
    ("outside_gsm7_emoji", "vz_sms_send", dict(SEND, sms_message="ok \U0001F600"),
     "characters outside the GSM-7 alphabet"),
    ("outside_ascii", "vz_sms_send", dict(SEND, sms_message="café", data_encoding="8-bit-ASCII"),
     "characters outside ASCII cannot be sent"),
    ("unknown_encoding", "vz_sms_send", dict(SEND, data_encoding="16-bit"),
     "value of data_encoding must be one of"),
    ("unknown_kind", "vz_sms_send", dict(SEND, devices=[{"kind": "phone", "id": "5550000001"}]),
     "devices[0].kind: 'phone' is not a device kind"),
    ("malformed_mdn", "vz_sms_send", dict(SEND, devices=[{"kind": "mdn", "id": "555"}]),
     "devices[0].id: '555' is not a valid mdn: expected 10 decimal digits"),
    ("malformed_iccid", "vz_sms_send", dict(SEND, devices=[device(2), {"kind": "iccid", "id": "8914800000ABCDEFGHI0"}]),
     "devices[1].id: '8914800000ABCDEFGHI0' is not a valid iccid"),
    ("device_without_id", "vz_sms_send", dict(SEND, devices=[{"kind": "mdn"}]),
     "devices[0]: each entry has exactly the keys 'kind' and 'id', both set"),
    ("empty_device_list", "vz_sms_send", dict(SEND, devices=[]),
     "devices: the list is empty"),
    ("devices_and_group", "vz_sms_send", dict(SEND, group_name="all"),
     "parameters are mutually exclusive: devices|group_name"),
    ("devices_and_custom_fields", "vz_sms_send", dict(SEND, custom_fields={"CustomField1": "East"}),
     "parameters are mutually exclusive: devices|custom_fields"),
    ("no_target", "vz_sms_send", NO_DEVICES,
     "one of the following is required: devices, devices_file, group_name, service_plan, custom_fields"),
    ("empty_filter", "vz_sms_send", dict(NO_DEVICES, group_name=""),
     "give at least one non-empty filter"),
    ("custom_field_6", "vz_sms_send", dict(NO_DEVICES, custom_fields={"CustomField6": "x"}),
     "custom_fields: 'CustomField6' is not a custom field name"),
    ("custom_field_case", "vz_sms_send", dict(NO_DEVICES, custom_fields={"customfield1": "x"}),
     "custom_fields: 'customfield1' is not a custom field name"),
    ("custom_field_empty", "vz_sms_send", dict(NO_DEVICES, custom_fields={"CustomField1": ""}),
     "custom_fields.CustomField1: the value must not be empty"),
    ("batch_size_0", "vz_sms_send", dict(SEND, batch_size=0),
     "batch_size: 0 is outside 1..10000"),
    ("batch_size_10001", "vz_sms_send", dict(SEND, batch_size=10001),
     "batch_size: 10001 is outside 1..10000"),
    ("max_devices_0", "vz_sms_send", dict(SEND, max_devices=0),
     "max_devices: must be at least 1"),
    ("over_max_devices", "vz_sms_send", dict(SEND, max_devices=1),
     "more than max_devices 1; nothing was sent"),
    ("filter_max_devices_without_account", "vz_sms_send", {"group_name": "all", "sms_message": "PING", "max_devices": 5},
     "account_name: needed to resolve a filter selection"),
    ("no_credentials", "vz_sms_send", SEND,
     "Missing credentials: an OAuth token needs client_id and client_secret"),
    ("no_password", "vz_sms_send", dict(SEND, **{name: CREDENTIAL_ARGS[name] for name in ("client_id", "client_secret", "username")}),
     "a session token needs username and password"),
    ("api_url_not_http", "vz_sms_send", dict(SEND, api_url="ftp://127.0.0.1/"),
     "api_url: 'ftp://127.0.0.1/' is not an http(s) URL"),
    ("negative_retries", "vz_sms_send", dict(SEND, retries=-1),
     "retries must be 0 or more"),
    ("callback_without_url", "vz_callback", {"account_name": ACCOUNT, "service_name": "SMSDeliveryConfirmation"},
     "state is present but all of the following are missing: callback_url"),
    ("callback_unknown_service", "vz_callback", {"account_name": ACCOUNT, "service_name": "SmsService", "callback_url": LISTENER},
     "value of service_name must be one of"),
    ("start_password_without_url", "vz_sms_start_callbacks", {"account_name": ACCOUNT, "callback_password": "listener-pass"},
     "missing parameter(s) required by 'callback_password': callback_url"),
    ("receive_negative_max", "vz_sms_receive", {"account_name": ACCOUNT, "max_messages": -1},
     "max_messages: must be 0 (no limit) or more"),
]
WITHOUT_CREDENTIALS = ("no_credentials", "no_password")
LANES = ["lane1", "lane2", "lane3"]


def test_every_bad_input_fails_before_any_request(emulator, ansible, figures):
    cases = [(case, module, args, {}) for case, module, args, _expected in CASES]
    cases.append(("filter_check_mode_without_account", "vz_sms_send", {"group_name": "all", "sms_message": "PING"}, {"check_mode": True}))
    expected = {case: text for case, _module, _args, text in CASES}
    expected["filter_check_mode_without_account"] = "account_name: needed to resolve a filter selection through the device list (check mode"
    # The cases share out over LANES hosts that run independently (strategy free): the same checks, sooner.
    tasks = []
    for number, (case, module, args, keywords) in enumerate(cases):
        if case not in WITHOUT_CREDENTIALS:
            args = dict(CREDENTIAL_ARGS, **args)
        tasks.append(dict(task(module, case, **args), when="inventory_hostname == %r" % LANES[number % len(LANES)], **keywords))

    play = ansible.run(tasks, credentials=False, hosts=LANES, strategy="free")

    results = {case: next(by_name[case] for by_name in play.by_host.values() if not by_name[case].get("skipped")) for case in expected}
    wrong = {case: result.get("msg") for case, result in results.items() if not result.get("failed") or expected[case] not in str(result.get("msg"))}
    assert not wrong, "cases that did not fail as expected: %r" % wrong
    assert emulator.requests() == [], "requests were made"
    assert not (ansible.state_dir / "tokens.json").exists()

    figures.update(cases=len(expected), failed_as_expected=len(expected) - len(wrong), requests_seen=len(emulator.requests()),
                   messages={case: result["msg"] for case, result in results.items()}, play_seconds=round(play.seconds, 1))
