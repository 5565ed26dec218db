"""vz_sms_send end to end against the fake API: idempotency, check mode, batches, failures, and every bad-input
row (each must fail before any request). Every test runs twice: as a module, and as the action plugin runs the task
in the controller."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from ledger_0_1_0 import schema_1_ledger
from urllib3.exceptions import ProtocolError

from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, service_scope
from ansible_collections.thingspace.m2m.plugins.module_utils.send import derive_key
from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_send

from fake_api import ACCOUNT, API

SEND = r"/api/m2m/v1/sms$"
UNCHECKED = ("Without account_name the selection was not checked for devices (allow_empty: true): ThingSpace sends to whatever it matches, "
             "possibly no device; give account_name to have it checked")
DEVICES = [{"kind": "mdn", "id": "555000%04d" % n} for n in range(1, 6)]


@pytest.fixture(params=["module", "controller"])
def run_module(request, run_module, run_in_controller):
    return run_module if request.param == "module" else run_in_controller


def sms_bodies(fake):
    return [body for method, path, body in fake.calls if method == "POST" and path == "/api/m2m/v1/sms"]


def test_send_devices_then_rerun_sends_nothing(fake, run_module):
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, devices=DEVICES, sms_message="hello")
    assert not failed and result["changed"]
    assert result["devices_sent"] == 5 and result["devices_skipped"] == 0 and len(result["request_ids"]) == 1
    assert result["message_size"] == {"used": 5, "limit": 160, "unit": "septets"}
    [body] = sms_bodies(fake)
    assert body["accountName"] == ACCOUNT and body["dataEncoding"] == "7-bit" and len(body["deviceIds"]) == 5

    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, devices=DEVICES, sms_message="hello")
    assert not failed and not result["changed"]
    assert result["devices_sent"] == 0 and result["devices_skipped"] == 5 and result["request_ids"] == []
    assert result["msg"] == "Nothing to send: the 5 device(s) already got this message under idempotency key %s" % result["idempotency_key"]
    assert len(sms_bodies(fake)) == 1


def test_added_devices_get_the_message_once(fake, run_module):
    run_module(vz_sms_send.main, account_name=ACCOUNT, devices=DEVICES[:3], sms_message="hello")
    result = run_module(vz_sms_send.main, account_name=ACCOUNT, devices=DEVICES, sms_message="hello")[0]
    assert result["changed"] and result["devices_sent"] == 2 and result["devices_skipped"] == 3
    assert [d["id"] for d in sms_bodies(fake)[1]["deviceIds"]] == ["5550000004", "5550000005"]


def test_force_and_another_message_send_again(fake, run_module):
    run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello")
    assert run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", force=True)[0]["devices_sent"] == 5
    assert run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello again")[0]["devices_sent"] == 5
    assert len(sms_bodies(fake)) == 3


def test_check_mode_previews_without_sending_or_logging_in(fake, run_module, state_dir):
    result, failed = run_module(vz_sms_send.main, check_mode=True, devices=DEVICES, sms_message="hello", batch_size=2)
    assert not failed and result["changed"] and result["devices_sent"] == 5
    assert [b["devices"] for b in result["batches"]] == [2, 2, 1] and {b["status"] for b in result["batches"]} == {"would_send"}
    assert result["devices_preview"][0] == {"kind": "mdn", "id": "5550000001"}
    assert fake.calls == [] and not (state_dir / "ledger.sqlite3").exists()


def test_check_mode_after_send_reports_no_change(fake, run_module):
    run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello")
    result = run_module(vz_sms_send.main, check_mode=True, devices=DEVICES, sms_message="hello")[0]
    assert not result["changed"] and result["devices_sent"] == 0 and result["devices_skipped"] == 5


def test_batches_of_at_most_batch_size(fake, run_module):
    result = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", batch_size=2)[0]
    assert [len(b["deviceIds"]) for b in sms_bodies(fake)] == [2, 2, 1]
    assert len(result["request_ids"]) == 3 and [b["status"] for b in result["batches"]] == ["sent"] * 3


def test_filters_send_once_and_check_mode_resolves_the_selection(fake, run_module):
    args = dict(account_name=ACCOUNT, filter_tracking="selection", sms_message="hello")
    result = run_module(vz_sms_send.main, check_mode=True, group_name="west", **args)[0]
    assert result["changed"] and result["devices_resolved"] == 4 and result["devices_sent"] == 4 and len(result["devices_preview"]) == 4
    assert sms_bodies(fake) == []
    result = run_module(vz_sms_send.main, group_name="west", custom_fields={"CustomField1": "Wave-3"}, **args)[0]
    assert result["changed"] and result["devices_sent"] is None and len(result["request_ids"]) == 1
    assert sms_bodies(fake)[0] == {"smsMessage": "hello", "accountName": ACCOUNT, "groupName": "west", "dataEncoding": "7-bit",
                                   "customFields": [{"key": "CustomField1", "value": "Wave-3"}]}
    result = run_module(vz_sms_send.main, group_name="west", custom_fields={"CustomField1": "Wave-3"}, **args)[0]
    assert not result["changed"] and len(sms_bodies(fake)) == 1


def test_max_devices_guards_filters_and_lists(fake, run_module):
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, group_name="west", sms_message="hello", max_devices=3)
    assert failed and "group_name=west of account %s holds 4 devices, more than max_devices 3" % ACCOUNT in result["msg"] and sms_bodies(fake) == []
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, group_name="west", sms_message="hello", max_devices=4)
    assert not failed and result["devices_resolved"] == 4 and result["devices_sent"] == 4 and len(sms_bodies(fake)) == 1
    calls = len(fake.calls)
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", max_devices=4)
    assert failed and "holds 5 devices, more than max_devices 4" in result["msg"] and len(fake.calls) == calls


def test_ambiguous_batch_is_unconfirmed_and_not_resent(fake, run_module):
    fake.script("POST", SEND, (200, {"requestId": "r1"}), requests.exceptions.ConnectionError(ProtocolError("Connection aborted.")))
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", batch_size=2)
    assert failed and result["changed"]
    assert [b["status"] for b in result["batches"]] == ["sent", "unconfirmed"]
    assert result["devices_unconfirmed"] == DEVICES[2:4]
    assert "1 later batch(es) were not attempted" in result["msg"] and "resend_unconfirmed" in result["msg"]

    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", batch_size=2)
    assert not failed and result["devices_sent"] == 1 and result["devices_unconfirmed"] == DEVICES[2:4]
    assert "2 target(s) have an unconfirmed send" in result["warnings"][0]
    assert [d["id"] for d in sms_bodies(fake)[-1]["deviceIds"]] == ["5550000005"]

    result = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", resend_unconfirmed=True)[0]
    assert result["devices_sent"] == 2 and [d["id"] for d in sms_bodies(fake)[-1]["deviceIds"]] == ["5550000003", "5550000004"]
    assert result["devices_unconfirmed"] == [] and result["warnings"] == []  # sent again, not skipped
    result = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello")[0]
    assert not result["changed"] and result["devices_unconfirmed"] == []


def _hold_a_claim(path, target, started, finish):
    Ledger(path).claim(service_scope(API), derive_key(None, None, "hello", "7-bit"), [target])
    started.set()
    finish.wait(30)


def test_devices_another_run_is_sending_are_left_to_it(fake, run_module, state_dir):
    started, finish = multiprocessing.Event(), multiprocessing.Event()
    path = str(state_dir / "ledger.sqlite3")
    Ledger(path).close()
    other = multiprocessing.Process(target=_hold_a_claim, args=(path, "mdn:5550000001", started, finish))
    other.start()
    try:
        assert started.wait(30)
        for extra, skipped in (({}, 1), ({"resend_unconfirmed": True}, 5)):
            result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", **extra)
            assert not failed and result["devices_skipped"] == skipped and result["devices_unconfirmed"] == []
            assert result["warnings"] == ["1 target(s) are being sent right now by another run under idempotency key %s; this run leaves them "
                                          "to it" % result["idempotency_key"]]
        assert [d["id"] for d in sms_bodies(fake)[0]["deviceIds"]] == [d["id"] for d in DEVICES[1:]]
        assert len(sms_bodies(fake)) == 1
    finally:
        finish.set()
        other.join(30)


class _LedgerOfARunThatLosesTheRace(Ledger):
    """The real ledger, where another run (its own connection and claim lock) claims every target right after this
    run's diff: the moment at which two runs of one send meet."""

    def diff(self, scope, key, targets, *args):
        found = super().diff(scope, key, targets, *args)
        self.other = Ledger(self.location)
        self.other.claim(scope, key, targets, *args)
        return found

    def close(self):
        self.other.close()
        super().close()


@pytest.mark.parametrize(
    ("selection", "what"),
    [
        ({"devices": DEVICES}, "5 device(s)"),
        ({"account_name": ACCOUNT, "group_name": "west"}, "the selection group_name=west (4 devices)"),
        ({"account_name": ACCOUNT, "group_name": "west", "filter_tracking": "selection"}, "the selection group_name=west"),
    ],
)
def test_a_run_whose_targets_another_run_claimed_first_says_so_and_warns(fake, run_module, monkeypatch, selection, what):
    monkeypatch.setattr(vz_sms_send, "Ledger", _LedgerOfARunThatLosesTheRace)
    result, failed = run_module(vz_sms_send.main, sms_message="hello", **selection)
    assert not failed and not result["changed"] and sms_bodies(fake) == []
    assert result["msg"] == "Nothing sent: another run under idempotency key %s claimed %s first" % (result["idempotency_key"], what)
    assert result["warnings"] == ["This run sent nothing: another run under idempotency key %s claimed %s between this run's check of the "
                                  "ledger and its send; see that run's result" % (result["idempotency_key"], what)]


def test_rejected_batch_is_released_and_sent_by_a_rerun(fake, run_module):
    fake.script("POST", SEND, (400, {"errorCode": "REQUEST_FAILED.UnexpectedError", "errorMessage": "try later"}))
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello")
    assert failed and not result["changed"] and result["batches"][0]["status"] == "failed"
    assert "nothing of it was sent" in result["msg"] and "REQUEST_FAILED.UnexpectedError" in result["msg"]
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello")
    assert not failed and result["devices_sent"] == 5


def test_secrets_are_not_returned(fake, run_module):
    result = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello")[0]
    text = repr(result)
    assert "csecret" not in text and "pass" not in text.replace("password", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"sms_message": ""}, "sms_message: must not be empty"),
        ({"sms_message": "x" * 161}, "sms_message: 161 septets is over the 160-septet limit"),
        ({"sms_message": "é" * 71, "data_encoding": "8-bit-UTF-8"}, "sms_message: 142 bytes is over the 140-byte limit"),
        ({"sms_message": "✓ done"}, "characters outside the GSM-7 alphabet cannot be sent with data_encoding 7-bit: '✓'; use data_encoding 8-bit-UTF-8"),
        ({"devices": [{"kind": "phone", "id": "5551234567"}]}, "devices[0].kind: 'phone' is not a device kind"),
        ({"devices": [{"kind": "mdn", "id": "55512"}]}, "devices[0].id: '55512' is not a valid mdn: expected 10 decimal digits"),
        ({"devices": []}, "devices: the list is empty"),
        ({"group_name": "west"}, "parameters are mutually exclusive: devices|group_name"),
        ({"devices": None}, "one of the following is required: devices, devices_file, group_name, service_plan, custom_fields"),
        ({"devices": None, "custom_fields": {"Region": "west"}}, "custom_fields: 'Region' is not a custom field name"),
        ({"batch_size": 10001}, "batch_size: 10001 is outside 1..10000"),
        ({"client_secret": None}, "Missing credentials: an OAuth token needs client_id and client_secret (env THINGSPACE_CLIENT_ID"),
        # A password that no message contains: Ansible masks no_log values in the result ("pass" in "password").
        ({"username": None, "password": "s3cr3t"}, "Missing credentials: a session token needs username and password (env THINGSPACE_USERNAME"),
        ({"api_url": "ftp://x"}, "api_url: 'ftp://x' is not an http(s) URL"),
        ({"devices": None, "group_name": "west", "max_devices": 5}, "account_name: needed to resolve a filter selection"),
        ({"sms_message": " \n "}, "sms_message: must not be empty or only whitespace"),
        ({"devices": [{"kind": "mdn", "id": "\u0665" * 10}]}, "devices[0].id: %r is not a valid mdn: expected 10 decimal digits" % ("\u0665" * 10)),
        ({"account_name": ACCOUNT + " "}, "account_name: %r has leading or trailing whitespace; remove it (names are matched exactly)" % (ACCOUNT + " ")),
        ({"devices": None, "group_name": " west"}, "group_name: ' west' has leading or trailing whitespace"),
        ({"devices": None, "service_plan": "m2m-basic\t"}, "service_plan: 'm2m-basic\\t' has leading or trailing whitespace"),
    ],
)
def test_send_bad_input_fails_before_any_request(fake, run_module, args, message):
    params = dict({"devices": DEVICES, "sms_message": "hello"}, **args)
    result, failed = run_module(vz_sms_send.main, **params)
    assert failed and message in result["msg"]
    assert fake.calls == []


@pytest.mark.parametrize("broken", ["empty ledger", "linked token cache lock"])
def test_a_broken_state_file_fails_the_send_before_any_request(fake, run_module, state_dir, tmp_path, broken):
    state_dir.mkdir(mode=0o700)
    if broken == "empty ledger":
        path = state_dir / "ledger.sqlite3"
        path.touch(mode=0o600)
        expected = "The ledger %s is empty (0 bytes)" % path
    else:
        path = state_dir / "tokens.json.lock"
        path.symlink_to(tmp_path / "elsewhere")
        expected = "The state path %s is a symbolic link" % path
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello")
    assert failed and expected in result["msg"]
    assert fake.calls == [] and not (tmp_path / "elsewhere").exists()


def test_credentials_from_environment(fake, run_module, monkeypatch):
    monkeypatch.setenv("THINGSPACE_CLIENT_SECRET", "csecret")
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", client_secret=None)
    assert not failed and result["devices_sent"] == 5


def test_invocation_is_trimmed_and_masked(fake, run_module):
    devices = [{"kind": "mdn", "id": "55500%05d" % n} for n in range(30)]
    result, _failed = run_module(vz_sms_send.main, devices=devices, sms_message="hello")
    args = result["invocation"]["module_args"]
    assert args["devices"][:20] == devices[:20] and args["devices"][20:] == ["... 10 more"]
    assert args["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" and args["client_secret"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_send

def report(self, **result):
    print(json.dumps({"changed": result["changed"], "loaded": sorted(m for m in ("requests", "pydantic") if m in sys.modules)}))
    sys.exit(0)

basic.AnsibleModule.exit_json = basic.AnsibleModule.fail_json = report
args = dict(json.loads(sys.argv[2]), _ansible_check_mode=True)
with patch_module_args(args):
    vz_sms_send.main()
"""


def test_a_task_that_makes_no_request_imports_neither_requests_nor_pydantic(state_dir):
    args = {"api_url": API, "client_id": "c", "client_secret": "s", "username": "u", "password": "p", "state_dir": str(state_dir),
            "devices": DEVICES, "sms_message": "hello"}
    collections = str(Path(__file__).resolve().parents[4] / ".collections")
    run = subprocess.run([sys.executable, "-c", PROBE, collections, json.dumps(args)], capture_output=True, text=True, check=True)
    assert json.loads(run.stdout) == {"changed": True, "loaded": []}


def _dropped():
    return requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError()))


@pytest.mark.parametrize(
    "path, answer",
    [
        (r"/oauth2/token$", (502, {"fault": {"code": "502", "message": "Bad Gateway"}})),
        (r"/oauth2/token$", (504, None)),
        (r"/oauth2/token$", (503, None)),
        (r"/oauth2/token$", _dropped()),
        (r"/session/login$", (502, None)),
        (r"/session/login$", _dropped()),
    ],
    ids=["token-502", "token-504", "token-503-no-retry-after", "token-dropped", "login-502", "login-dropped"],
)
# A selection without account_name is sent unchecked (allow_empty), so that the first login is the send's.
@pytest.mark.parametrize("selection", [{"devices": DEVICES, "account_name": ACCOUNT},
                                       {"group_name": "east", "filter_tracking": "selection", "allow_empty": True}], ids=["devices", "filter"])
def test_a_failed_login_is_not_sent_and_the_next_run_sends(fake, run_module, path, answer, selection):
    fake.script("POST", path, answer)
    result, failed = run_module(vz_sms_send.main, sms_message="hello", **selection)
    assert failed and "nothing of it was sent" in result["msg"] and not sms_bodies(fake)
    assert result["devices_unconfirmed"] == [] and not result["selection_unconfirmed"] and not result["changed"]
    result, failed = run_module(vz_sms_send.main, sms_message="hello", **selection)
    assert not failed and result["changed"] and len(sms_bodies(fake)) == 1
    assert result["warnings"] == ([] if "devices" in selection else [UNCHECKED])


@pytest.mark.parametrize("status", [500, 501, 502, 504, 505])
def test_a_server_error_to_the_send_is_unconfirmed_not_resent(fake, run_module, status):
    fake.script("POST", SEND, (status, {"errorCode": "REQUEST_FAILED.UnexpectedError", "errorMessage": "boom"}))
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello")
    assert failed and result["changed"] and result["batches"][0]["status"] == "unconfirmed"
    assert len(result["devices_unconfirmed"]) == 5 and "resend_unconfirmed" in result["msg"]
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello")
    assert not failed and not result["changed"] and len(sms_bodies(fake)) == 1 and "unconfirmed" in result["warnings"][0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 415])
def test_a_client_error_to_the_send_proves_nothing_was_sent(fake, run_module, status):
    body = {"fault": {"code": "900902", "message": "Missing Credentials"}} if status == 401 else {"errorCode": "INPUT_INVALID.X", "errorMessage": "no"}
    fake.script("POST", SEND, (status, body))
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello")
    assert failed and not result["changed"] and result["batches"][0]["status"] == "failed" and result["devices_unconfirmed"] == []
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello")
    assert not failed and result["devices_sent"] == 5


@pytest.mark.parametrize(
    "first, second, differs",
    [
        ({"devices": DEVICES, "sms_message": "APN=old"}, {"devices": DEVICES, "sms_message": "APN=corrected"}, "message: another text"),
        ({"devices": DEVICES, "sms_message": "hi"}, {"devices": DEVICES, "sms_message": "hi", "data_encoding": "8-bit-ASCII"}, 'encoding: was "7-bit"'),
        ({"group_name": "east", "sms_message": "hi"}, {"group_name": "west", "sms_message": "hi"}, '"group_name": "east"'),
        ({"custom_fields": {"CustomField1": "wave-3"}, "sms_message": "hi"},
         {"custom_fields": {"CustomField1": "wave-4"}, "sms_message": "hi"}, "selection: was"),
    ],
    ids=["message", "encoding", "group", "custom-field-value"],
)
def test_a_key_reused_for_another_send_is_refused_not_skipped(fake, run_module, first, second, differs):
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, idempotency_key="wave-3", **first)
    assert not failed and result["changed"]
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, idempotency_key="wave-3", **second)
    assert failed and "idempotency_key 'wave-3' was used for another send" in result["msg"] and differs in result["msg"]
    assert "new idempotency_key" in result["msg"] and "force" in result["msg"] and len(sms_bodies(fake)) == 1
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, idempotency_key="wave-3", check_mode=True, **second)
    assert failed and "was used for another send" in result["msg"]
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, idempotency_key="wave-3", force=True, **second)
    assert not failed and result["changed"] and len(sms_bodies(fake)) == 2
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, idempotency_key="wave-3", **second)
    assert not failed and not result["changed"]  # force recorded the new use of the key


def test_a_device_list_grows_under_its_key(fake, run_module):
    run_module(vz_sms_send.main, idempotency_key="wave-3", devices=DEVICES[:2], sms_message="hi")
    result, failed = run_module(vz_sms_send.main, idempotency_key="wave-3", devices=DEVICES, sms_message="hi")
    assert not failed and result["devices_sent"] == 3 and result["devices_skipped"] == 2


MEID = "a0000012345678"


@pytest.mark.parametrize(
    "first, second",
    [
        ({"devices": [{"kind": "meid", "id": MEID}]}, {"devices": [{"kind": "MEID", "id": MEID.upper()}]}),
        ({"devices": DEVICES, "account_name": ACCOUNT}, {"devices": DEVICES}),
        ({"devices": DEVICES}, {"devices": DEVICES, "api_url": "HTTP://127.0.0.1:9/"}),
        ({"devices": DEVICES, "api_url": "https://ThingSpace.example:443/"}, {"devices": DEVICES, "api_url": "https://thingspace.example"}),
    ],
    ids=["meid-case", "account-given-then-omitted", "api-url-case-and-slash", "api-url-default-port"],
)
def test_the_same_device_and_service_under_another_spelling_is_not_sent_again(fake, run_module, first, second):
    result, failed = run_module(vz_sms_send.main, sms_message="hello", **first)
    assert not failed and result["changed"]
    result, failed = run_module(vz_sms_send.main, sms_message="hello", **second)
    assert not failed and not result["changed"] and len(sms_bodies(fake)) == 1, result["msg"]


def test_a_ledger_of_version_0_1_0_is_migrated_and_nothing_is_sent_again(fake, run_module, state_dir):
    import hashlib

    # The schema and derived key of version 0.1.0 (schema 1): scope "api_url|account", hex identifiers as given.
    old_key = "auto-" + hashlib.sha256(json.dumps(
        {"account": ACCOUNT, "selection": {"devices": True}, "message": "hello", "encoding": "7-bit"}, sort_keys=True).encode()).hexdigest()[:32]
    schema_1_ledger(state_dir / "ledger.sqlite3", [(1, "%s/|%s" % (API, ACCOUNT), old_key), (2, "%s|%s" % (API.upper(), ACCOUNT), "wave-1")],
                    [(1, "mdn:%s" % d["id"], "r1") for d in DEVICES] + [(1, "meid:" + MEID, "r1"), (2, "mdn:5550000001", "r2")])
    devices = [*DEVICES, {"kind": "meid", "id": MEID.upper()}]
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, devices=devices, sms_message="hello")
    assert not failed and not result["changed"] and result["idempotency_key"] == old_key and result["devices_skipped"] == 6
    result, failed = run_module(vz_sms_send.main, idempotency_key="wave-1", devices=DEVICES[:1], sms_message="hello")
    assert not failed and not result["changed"] and not sms_bodies(fake)


def test_devices_that_join_a_group_get_the_message_on_a_rerun(fake, run_module):
    args = dict(account_name=ACCOUNT, group_name="west", sms_message="hello", batch_size=3)
    result, failed = run_module(vz_sms_send.main, check_mode=True, **args)
    assert not failed and result["devices_sent"] == 4 and len(result["devices_preview"]) == 4 and not sms_bodies(fake)
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and result["devices_resolved"] == 4 and result["devices_sent"] == 4 and len(result["request_ids"]) == 2
    first = [body["deviceIds"] for body in sms_bodies(fake)]
    assert [len(ids) for ids in first] == [3, 1] and all(d["kind"] == "iccid" for ids in first for d in ids)
    assert all("groupName" not in body for body in sms_bodies(fake))
    fake.devices.append({"accountName": ACCOUNT, "deviceIds": [{"kind": "MDN", "id": "5550009999"}, {"kind": "ICCID", "id": "89148000000899999999"}],
                         "groupNames": ["west"], "extendedAttributes": [{"key": "DeviceId", "value": "2000"}]})
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and result["devices_sent"] == 1 and result["devices_skipped"] == 4
    assert sms_bodies(fake)[-1]["deviceIds"] == [{"kind": "iccid", "id": "89148000000899999999"}]
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and not result["changed"] and len(sms_bodies(fake)) == 3


def test_filter_tracking_cannot_change_under_a_key(fake, run_module):
    args = dict(account_name=ACCOUNT, group_name="west", sms_message="hello", idempotency_key="wave-9")
    assert not run_module(vz_sms_send.main, filter_tracking="selection", **args)[1]
    result, failed = run_module(vz_sms_send.main, **args)
    assert failed and 'tracking: was "selection", now "device"' in result["msg"] and len(sms_bodies(fake)) == 1


def test_device_tracking_needs_the_account_before_any_request(fake, run_module):
    result, failed = run_module(vz_sms_send.main, group_name="west", sms_message="hello")
    assert failed and result["msg"].startswith("account_name: needed to resolve") and fake.calls == []
    result, failed = run_module(vz_sms_send.main, group_name="west", sms_message="hello", filter_tracking="selection")
    assert failed and result["msg"].startswith("account_name: needed to resolve") and fake.calls == []
    result, failed = run_module(vz_sms_send.main, group_name="west", sms_message="hello", filter_tracking="selection", allow_empty=True)
    assert not failed and sms_bodies(fake)[0]["groupName"] == "west" and result["warnings"] == [UNCHECKED]


def test_timeout_and_validate_certs_go_with_every_request(fake, run_module):
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", timeout=7.5, validate_certs=False)
    assert not failed and result["changed"]
    assert [(settings["timeout"], settings["verify"]) for _request, settings in fake.sent] == [(7.5, False)] * 3


# --- what a send returns, records and says (issue 14) ------------------------------------------------------------

OTHER_ACCOUNT = "0000999999-00001"


def ledger_records(state_dir):
    """target → (state, request id) of every send recorded in the task's ledger."""
    ledger = Ledger(str(state_dir / "ledger.sqlite3"))
    try:
        return {target: (state, request_id) for _scope, _key, target, state, request_id, _claim in ledger.records()}
    finally:
        ledger.close()


@pytest.mark.parametrize(
    "args, key",
    [
        ({"devices": DEVICES}, "auto-4ba898ba1c6e5d4a6f766cac36ed2872"),
        ({"devices": DEVICES, "data_encoding": "8-bit-ASCII"}, "auto-3608771fb850320f1c347aa972b62bb4"),
        ({"group_name": "west", "filter_tracking": "selection"}, "auto-1ac6a88917224ea71ff69099c01a03d8"),
        ({"group_name": "west", "data_encoding": "8-bit-ASCII"}, "auto-db3907da6e5d4b692773c313c463938f"),
    ],
    ids=["devices", "devices-8-bit", "filters", "filters-8-bit"],
)
def test_the_default_idempotency_key_stays_the_same_across_versions(fake, run_module, args, key):
    """A ledger written by an earlier version is read under the key it derives, or the next version sends everything again."""
    result, failed = run_module(vz_sms_send.main, check_mode=True, account_name=ACCOUNT, sms_message="hello", **args)
    assert not failed and result["idempotency_key"] == key


def test_a_key_used_for_a_device_list_is_refused_for_filters_and_for_another_account(fake, run_module):
    run_module(vz_sms_send.main, idempotency_key="wave-3", devices=DEVICES, sms_message="hi")
    result, failed = run_module(vz_sms_send.main, idempotency_key="wave-3", account_name=ACCOUNT, group_name="west", filter_tracking="selection",
                                sms_message="hi")
    assert failed and result["msg"] == (
        "idempotency_key 'wave-3' was used for another send (selection: was \"device list\", now {\"account_name\": \"%s\", \"custom_fields\": [], "
        "\"group_name\": \"west\", \"service_plan\": null}; tracking: was \"device\", now \"selection\"); nothing was sent. Use a new "
        "idempotency_key for this send, or force: true to send it under this key to every target again" % ACCOUNT)
    args = dict(idempotency_key="wave-4", group_name="west", filter_tracking="selection", sms_message="hi")
    assert not run_module(vz_sms_send.main, account_name=ACCOUNT, **args)[1]
    result, failed = run_module(vz_sms_send.main, account_name=OTHER_ACCOUNT, **args)
    assert failed and "selection: was {\"account_name\": \"%s\"" % ACCOUNT in result["msg"] and "now {\"account_name\": \"%s\"" % OTHER_ACCOUNT in result["msg"]
    assert len(sms_bodies(fake)) == 2


def test_request_ids_are_returned_and_recorded(fake, run_module, state_dir):
    fake.script("POST", SEND, *[(200, {"requestId": "r%d" % n}) for n in (1, 2, 3)])
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", batch_size=2)
    assert not failed and result["msg"] == "Sent to 5 device(s) in 3 request(s)"
    assert result["request_ids"] == ["r1", "r2", "r3"]
    assert result["batches"] == [{"index": 0, "devices": 2, "status": "sent", "request_id": "r1"},
                                 {"index": 1, "devices": 2, "status": "sent", "request_id": "r2"},
                                 {"index": 2, "devices": 1, "status": "sent", "request_id": "r3"}]
    assert (result["data_encoding"], result["devices_requested"], result["devices_resolved"], result["devices_sent"]) == ("7-bit", 5, None, 5)
    assert ledger_records(state_dir) == {"mdn:%s" % d["id"]: ("sent", "r%d" % (1 + n // 2)) for n, d in enumerate(DEVICES)}


def test_batch_size_and_max_devices_of_one_are_allowed(fake, run_module):
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", batch_size=1, max_devices=5)
    assert not failed and [len(body["deviceIds"]) for body in sms_bodies(fake)] == [1] * 5
    result, failed = run_module(vz_sms_send.main, devices=DEVICES[:1], sms_message="hello again", max_devices=1)
    assert not failed and result["devices_sent"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        ({"devices": []}, "devices: the list is empty; give at least one {kind, id} or use a filter"),
        ({"devices": None, "group_name": ""}, "group_name, service_plan, custom_fields: give at least one non-empty filter, or devices"),
        ({"batch_size": 0}, "batch_size: 0 is outside 1..10000 (the API takes at most 10000 devices per request)"),
        ({"max_devices": 0}, "max_devices: must be at least 1"),
        ({"max_devices": 4}, "max_devices: the device list holds 5 devices, more than max_devices 4; nothing was sent"),
        ({"devices": None, "group_name": "west", "filter_tracking": "selection", "_check_mode": True},
         "account_name: needed to resolve a filter selection through the device list (check mode, max_devices, filter_tracking: device) and "
         "to check that it matches a device; give it, or send with filter_tracking: selection and allow_empty: true"),
    ],
    ids=["empty-list", "empty-filter", "batch-size-0", "max-devices-0", "over-max-devices", "check-mode-without-account"],
)
def test_input_refused_before_any_request_says_exactly_why(fake, run_module, args, message):
    args = dict({"devices": DEVICES, "sms_message": "hello"}, **args)
    result, failed = run_module(vz_sms_send.main, check_mode=args.pop("_check_mode", False), **args)
    assert failed and result["msg"] == message and fake.calls == []


def test_a_selection_over_max_devices_sends_nothing(fake, run_module):
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, group_name="west", filter_tracking="selection", sms_message="hello",
                                max_devices=3)
    assert failed and result["msg"] == ("max_devices: the selection group_name=west of account %s holds 4 devices, more than max_devices 3; "
                                        "nothing was sent" % ACCOUNT)
    assert sms_bodies(fake) == []


def test_check_mode_says_what_would_go_out_in_which_batches(fake, run_module):
    result, failed = run_module(vz_sms_send.main, check_mode=True, devices=DEVICES, sms_message="hello", batch_size=2)
    assert not failed and result["msg"] == "Check mode: would send to 5 device(s)"
    assert result["batches"] == [{"index": 0, "devices": 2, "status": "would_send"}, {"index": 1, "devices": 2, "status": "would_send"},
                                 {"index": 2, "devices": 1, "status": "would_send"}]
    result, failed = run_module(vz_sms_send.main, check_mode=True, account_name=ACCOUNT, group_name="west", filter_tracking="selection",
                                sms_message="hello")
    assert not failed and result["msg"] == "Check mode: would send to the selection group_name=west (4 devices)"
    assert result["batches"] == [{"index": 0, "devices": 4, "status": "would_send"}]
    assert (result["devices_requested"], result["devices_resolved"], result["devices_sent"]) == (None, 4, 4)


def test_a_selection_goes_out_with_every_filter_and_reports_the_devices_it_resolved(fake, run_module):
    args = dict(account_name=ACCOUNT, group_name="west", service_plan="m2m-basic", filter_tracking="selection", sms_message="hello", max_devices=10)
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and result["msg"] == "Sent to the selection group_name=west, service_plan=m2m-basic (4 devices) in 1 request(s)"
    assert (result["devices_resolved"], result["devices_sent"], result["devices_skipped"]) == (4, 4, None)
    [body] = sms_bodies(fake)
    assert (body["groupName"], body["servicePlan"]) == ("west", "m2m-basic") and "deviceIds" not in body
    assert {body.get("servicePlan") for method, path, body in fake.calls if path.endswith("/devices/actions/list")} == {"m2m-basic"}
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and not result["changed"] and (result["devices_sent"], result["devices_skipped"]) == (None, None)
    assert result["msg"] == "Nothing to send: this selection already got this message under idempotency key %s" % result["idempotency_key"]


def test_an_ambiguous_send_to_a_selection_is_unconfirmed_and_not_resent(fake, run_module):
    args = dict(account_name=ACCOUNT, group_name="west", filter_tracking="selection", sms_message="hello")
    fake.script("POST", SEND, (502, {"errorCode": "REQUEST_FAILED.UnexpectedError", "errorMessage": "boom"}))
    result, failed = run_module(vz_sms_send.main, **args)
    error = "Failed to send SMS: HTTP 502 REQUEST_FAILED.UnexpectedError: boom; the request may have been processed"
    assert failed and result["changed"] and result["selection_unconfirmed"] is True and result["devices_unconfirmed"] == []
    assert result["batches"] == [{"index": 0, "devices": None, "status": "unconfirmed", "error": error}]
    assert result["msg"] == ("Batch 1 of 1 is unconfirmed: %s. The ledger records it as unknown, so a re-run does not send it again; after "
                             "checking the devices, re-run with resend_unconfirmed: true to send it once more" % error)
    key = result["idempotency_key"]
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and not result["changed"] and result["selection_unconfirmed"] is True and len(sms_bodies(fake)) == 1
    assert result["msg"] == "Nothing to send: this selection already got this message (unconfirmed) under idempotency key %s" % key
    assert result["warnings"] == ["1 target(s) have an unconfirmed send under idempotency key %s (no answer came, or a run stopped while "
                                  "sending); they are not sent again. Check them, then use resend_unconfirmed: true to send them once more" % key]
    result, failed = run_module(vz_sms_send.main, resend_unconfirmed=True, **args)
    assert not failed and result["changed"] and result["selection_unconfirmed"] is False and result["warnings"] == []
    assert len(sms_bodies(fake)) == 2


@pytest.mark.parametrize(
    "answer, status, says",
    [
        ((400, {"errorCode": "INPUT_INVALID.X", "errorMessage": "no"}), "failed", "Batch 2 of 3 failed, nothing of it was sent: %s"),
        ((502, {"errorCode": "INPUT_INVALID.X", "errorMessage": "no"}), "unconfirmed",
         "Batch 2 of 3 is unconfirmed: %s. The ledger records it as unknown, so a re-run does not send it again; after checking the devices, "
         "re-run with resend_unconfirmed: true to send it once more"),
    ],
    ids=["refused", "ambiguous"],
)
def test_a_failed_batch_says_which_one_and_that_later_ones_were_not_attempted(fake, run_module, state_dir, answer, status, says):
    fake.script("POST", SEND, (200, {"requestId": "r1"}), answer)
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", batch_size=2)
    error = "Failed to send SMS: HTTP %d INPUT_INVALID.X: no%s" % (answer[0], "; the request may have been processed" if answer[0] == 502 else "")
    assert failed and result["msg"] == (says % error) + "; 1 later batch(es) were not attempted, a re-run sends them"
    assert result["batches"] == [{"index": 0, "devices": 2, "status": "sent", "request_id": "r1"},
                                 {"index": 1, "devices": 2, "status": status, "error": error}]
    expected = {"mdn:5550000001": ("sent", "r1"), "mdn:5550000002": ("sent", "r1")}
    if status == "unconfirmed":
        expected.update({"mdn:5550000003": ("unknown", None), "mdn:5550000004": ("unknown", None)})
    assert ledger_records(state_dir) == expected


def test_a_selection_the_ledger_cannot_claim_is_not_sent_and_counts_no_device(fake, run_module, monkeypatch):
    """A send by filters whose claim fails: one failed batch, its device count unknown (None), nothing sent."""

    def refuse(*args, **kwargs):
        raise ThingSpaceError("the ledger is read-only")

    monkeypatch.setattr(Ledger, "claim", refuse)
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, group_name="west", filter_tracking="selection", sms_message="hello")
    assert failed and result["msg"] == "Batch 1 of 1 was not sent: the ledger could not claim it: the ledger is read-only"
    assert result["batches"] == [{"index": 0, "devices": None, "status": "failed", "error": "the ledger is read-only"}]
    assert sms_bodies(fake) == []


def test_a_failed_last_batch_names_no_later_batches(fake, run_module):
    fake.script("POST", SEND, (400, {"errorCode": "INPUT_INVALID.X", "errorMessage": "no"}))
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello")
    assert failed and result["msg"] == "Batch 1 of 1 failed, nothing of it was sent: Failed to send SMS: HTTP 400 INPUT_INVALID.X: no"


def test_nothing_to_send_counts_the_unconfirmed_devices(fake, run_module):
    fake.script("POST", SEND, requests.exceptions.ConnectionError(ProtocolError("Connection aborted.")))
    run_module(vz_sms_send.main, devices=DEVICES[:2], sms_message="hello")
    result, failed = run_module(vz_sms_send.main, devices=DEVICES[:2], sms_message="hello")
    key = result["idempotency_key"]
    assert not failed and result["msg"] == "Nothing to send: the 2 device(s) already got this message (2 unconfirmed) under idempotency key %s" % key
    assert result["devices_unconfirmed"] == DEVICES[:2] and len(sms_bodies(fake)) == 1


class _LedgerOfARunThatClaimsTheFirstBatchFirst(Ledger):
    """The real ledger, where another run claims the first two targets right after this run's diff."""

    def diff(self, scope, key, targets, *args):
        found = super().diff(scope, key, targets, *args)
        self.other = Ledger(self.location)
        self.other.claim(scope, key, targets[:2], *args)
        return found

    def close(self):
        self.other.close()
        super().close()


def test_a_batch_another_run_claimed_meanwhile_is_skipped_and_the_next_ones_are_sent(fake, run_module, monkeypatch):
    monkeypatch.setattr(vz_sms_send, "Ledger", _LedgerOfARunThatClaimsTheFirstBatchFirst)
    fake.script("POST", SEND, (200, {"requestId": "r1"}), (200, {"requestId": "r2"}))
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", batch_size=2)
    assert not failed and result["changed"] and result["msg"] == "Sent to 3 device(s) in 2 request(s)"
    assert result["batches"] == [{"index": 0, "devices": 0, "status": "skipped"},
                                 {"index": 1, "devices": 2, "status": "sent", "request_id": "r1"},
                                 {"index": 2, "devices": 1, "status": "sent", "request_id": "r2"}]
    assert (result["devices_sent"], result["devices_skipped"]) == (3, 2)
    assert [[d["id"] for d in body["deviceIds"]] for body in sms_bodies(fake)] == [["5550000003", "5550000004"], ["5550000005"]]


def test_a_resolved_device_without_a_usable_identifier_is_left_out(fake, run_module):
    fake.devices.insert(0, {"accountName": ACCOUNT, "deviceIds": [{"kind": "serial", "id": "SN-1"}], "groupNames": ["west"],
                            "extendedAttributes": [{"key": "DeviceId", "value": "999"}]})
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, group_name="west", sms_message="hello")
    assert not failed and result["devices_resolved"] == 4 and result["devices_sent"] == 4


def test_a_resolved_device_with_a_malformed_identifier_fails_naming_the_answer(fake, run_module):
    fake.devices[0]["deviceIds"] = [{"kind": "mdn", "id": "555"}]
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, group_name="west", sms_message="hello")
    assert failed and result["msg"] == "Unexpected content in the device list answer.id: '555' is not a valid mdn: expected 10 decimal digits"
    assert sms_bodies(fake) == []


def test_the_key_of_version_0_1_0_is_taken_only_while_the_current_key_is_unknown(fake, run_module):
    import hashlib

    old_key = "auto-" + hashlib.sha256(json.dumps(
        {"account": ACCOUNT, "selection": {"devices": True}, "message": "hello", "encoding": "7-bit"}, sort_keys=True).encode()).hexdigest()[:32]
    run_module(vz_sms_send.main, idempotency_key=old_key, devices=DEVICES[:1], sms_message="hello")  # as 0.1.0 recorded it
    result = run_module(vz_sms_send.main, account_name=ACCOUNT, devices=DEVICES[:1], sms_message="hello")[0]
    assert not result["changed"] and result["idempotency_key"] == old_key
    result = run_module(vz_sms_send.main, devices=DEVICES[:3], sms_message="hello")[0]  # no account: the current key, sent to 3
    current = result["idempotency_key"]
    assert result["devices_sent"] == 3 and current != old_key
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, devices=DEVICES[:3], sms_message="hello")
    assert not failed and not result["changed"] and result["idempotency_key"] == current and len(sms_bodies(fake)) == 2


# --- devices_file: the device list read from a JSON file by the module's code -------------------------------------------


NOT_A_LIST = "devices_file: {path} holds neither a JSON list of {{kind, id}} nor an object with the single key 'devices' holding one"


def devices_file(tmp_path, content):
    path = tmp_path / "fleet.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode("utf-8"))
    return str(path)


@pytest.mark.parametrize("shape", ["list", "object"])
def test_a_devices_file_is_the_same_send_as_its_list(fake, run_module, tmp_path, shape):
    path = devices_file(tmp_path, DEVICES[:3] if shape == "list" else {"devices": DEVICES[:3]})
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, devices_file=path, sms_message="hello")
    assert not failed and result["devices_sent"] == result["devices_requested"] == 3
    assert result["idempotency_key"] == derive_key(None, None, "hello", "7-bit")
    assert sms_bodies(fake)[0]["deviceIds"] == DEVICES[:3]
    # The same ledger entries: the list by the option devices sends only to the devices the file did not hold.
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, devices=DEVICES, sms_message="hello")
    assert not failed and result["devices_sent"] == 2 and result["devices_skipped"] == 3
    result, failed = run_module(vz_sms_send.main, check_mode=True, account_name=ACCOUNT, devices_file=path, sms_message="hello")
    assert not failed and not result["changed"] and result["devices_skipped"] == 3
    assert len(sms_bodies(fake)) == 2


def test_a_devices_file_in_check_mode_sends_nothing(fake, run_module, tmp_path, state_dir):
    path = devices_file(tmp_path, DEVICES)
    result, failed = run_module(vz_sms_send.main, check_mode=True, devices_file=path, sms_message="hello", batch_size=2)
    assert not failed and result["changed"] and [b["devices"] for b in result["batches"]] == [2, 2, 1]
    assert result["devices_preview"] == DEVICES and fake.calls == [] and not (state_dir / "ledger.sqlite3").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "devices_file: cannot read {path}: No such file or directory"),
        (b"[{'kind': 'mdn'}]", "devices_file: {path} is not a JSON file: Expecting property name enclosed in double quotes: line 1 column 3 (char 2)"),
        (b'["\xff"]', "devices_file: {path} is not a JSON file: 'utf-8' codec can't decode byte 0xff in position 2: invalid start byte"),
        ({"devices": DEVICES, "count": 5}, NOT_A_LIST),
        ({"device": DEVICES}, NOT_A_LIST),
        ({"devices": {"kind": "mdn", "id": "5550000001"}}, "devices_file: {path} holds neither a JSON list"),
        ([], "devices_file {path}: the list is empty; give at least one {{kind, id}} or use a filter"),
        ({"devices": []}, "devices_file {path}: the list is empty"),
        ([DEVICES[0], {"kind": "mdn", "id": 55512}], "devices_file {path}[1].id: '55512' is not a valid mdn: expected 10 decimal digits"),
        ([DEVICES[0], "5550000002"], "devices_file {path}[1]: each entry has exactly the keys 'kind' and 'id', both set; got '5550000002'"),
    ],
    ids=["missing", "not-json", "not-utf-8", "extra-key", "wrong-key", "not-a-list", "empty", "empty-object", "bad-id", "not-an-entry"],
)
def test_a_bad_devices_file_fails_before_any_request(fake, run_module, tmp_path, content, message):
    path = str(tmp_path / "fleet.json") if content is None else devices_file(tmp_path, content)
    result, failed = run_module(vz_sms_send.main, devices_file=path, sms_message="hello")
    assert failed and result["msg"].startswith(message.format(path=path)) and fake.calls == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"devices": DEVICES}, "parameters are mutually exclusive: devices|devices_file"),
        ({"group_name": "west"}, "parameters are mutually exclusive: devices_file|group_name"),
        ({"custom_fields": {"CustomField1": "x"}}, "parameters are mutually exclusive: devices_file|custom_fields"),
    ],
)
def test_a_devices_file_goes_alone(fake, run_module, tmp_path, args, message):
    result, failed = run_module(vz_sms_send.main, devices_file=devices_file(tmp_path, DEVICES), sms_message="hello", **args)
    assert failed and result["msg"] == message and fake.calls == []


# --- a selection that matches nothing, max_devices' count, bad entries, devices the account does not have (issue 20) ----

LIST = r"/devices/actions/list$"
NOBODY = {"CustomField1": "nobody"}


@pytest.mark.parametrize("tracking", ["device", "selection"])
def test_a_selection_that_matches_no_device_fails_before_any_sms_request(fake, run_module, tracking):
    args = dict(account_name=ACCOUNT, group_name="west", custom_fields=NOBODY, filter_tracking=tracking, sms_message="hello")
    result, failed = run_module(vz_sms_send.main, **args)
    assert failed and result["msg"] == (
        "The selection group_name=west, CustomField1=nobody matches no device of account %s; nothing was sent. Check the filters (names "
        "match exactly; custom field values match whole values, ignoring case), or set allow_empty: true to accept a selection without "
        "devices" % ACCOUNT)
    assert sms_bodies(fake) == [] and fake.count("POST", LIST) == 1
    result, failed = run_module(vz_sms_send.main, check_mode=True, **args)
    assert failed and "matches no device of account %s" % ACCOUNT in result["msg"] and sms_bodies(fake) == []

    result, failed = run_module(vz_sms_send.main, allow_empty=True, **args)
    what = "the selection group_name=west, CustomField1=nobody matches no device of account %s" % ACCOUNT
    assert not failed and not result["changed"] and result["msg"] == "Nothing to send: %s" % what
    assert result["warnings"] == ["T%s; nothing was sent (allow_empty: true)" % what[1:]]
    assert (result["devices_resolved"], result["devices_sent"], result["request_ids"]) == (0, 0, [])
    assert sms_bodies(fake) == [] and fake.count("POST", LIST) == 3


def test_a_selection_sent_as_a_whole_is_checked_with_one_device_list_request(fake, run_module):
    """The first page of the device list tells whether a selection matches a device; the send does not read the others."""
    fake.device_page = 1
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, group_name="west", filter_tracking="selection", sms_message="hello")
    assert not failed and result["changed"] and result["devices_resolved"] is None
    assert fake.count("POST", LIST) == 1 and len(sms_bodies(fake)) == 1


def test_max_devices_states_the_count_found_and_whether_more_were_not_read(fake, run_module):
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, group_name="west", sms_message="hello", max_devices=1)
    assert failed and result["msg"] == (
        "max_devices: the selection group_name=west of account %s holds at least 3 devices (in the first 1 page(s) of the device list, "
        "which was not read further), more than max_devices 1; nothing was sent" % ACCOUNT)
    assert fake.count("POST", LIST) == 1 and sms_bodies(fake) == []


@pytest.mark.parametrize("option", ["devices", "devices_file"])
def test_every_bad_device_entry_is_named_the_first_20_and_a_count_of_the_rest(fake, run_module, tmp_path, option):
    entries = [DEVICES[0]] + [{"kind": "mdn", "id": "5%d" % n} for n in range(24)] + [{"kind": "phone", "id": "5550000002"}]
    where = "devices" if option == "devices" else "devices_file %s" % devices_file(tmp_path, entries)
    result, failed = run_module(vz_sms_send.main, sms_message="hello", **{option: entries if option == "devices" else where.split(" ", 1)[1]})
    shown = "; ".join("%s[%d].id: '5%d' is not a valid mdn: expected 10 decimal digits" % (where, n + 1, n) for n in range(20))
    assert failed and result["msg"] == "%s: 25 entries are not valid: %s; and 5 more" % (where, shown) and fake.calls == []


@pytest.mark.parametrize("tracking", ["device", "selection"])
def test_a_custom_field_value_in_another_case_is_the_same_send(fake, run_module, tracking):
    args = dict(account_name=ACCOUNT, filter_tracking=tracking, sms_message="hello")
    first = run_module(vz_sms_send.main, custom_fields={"CustomField1": "wave-3"}, **args)[0]
    result, failed = run_module(vz_sms_send.main, custom_fields={"CustomField1": "WAVE-3"}, **args)
    assert not failed and not result["changed"] and result["idempotency_key"] == first["idempotency_key"]
    result, failed = run_module(vz_sms_send.main, custom_fields={"CustomField1": "Wave-3"}, idempotency_key="wave-7", **args)
    assert not failed and result["changed"]
    result, failed = run_module(vz_sms_send.main, custom_fields={"CustomField1": "wAVE-3"}, idempotency_key="wave-7", **args)
    assert not failed and not result["changed"], result["msg"]  # the purpose check takes it as the same selection
    assert len(sms_bodies(fake)) == 2


def test_a_mixed_case_custom_field_send_of_an_earlier_version_is_not_sent_again(fake, run_module):
    """Earlier versions hashed custom field values as given: that key is still found for the same spelling."""
    from ansible_collections.thingspace.m2m.plugins.module_utils.send import _derive

    filters = {"group_name": None, "service_plan": None, "custom_fields": [{"key": "CustomField1", "value": "Wave-3"}]}
    old_key = _derive(ACCOUNT, filters, "hello", "7-bit")
    args = dict(account_name=ACCOUNT, custom_fields={"CustomField1": "Wave-3"}, sms_message="hello")
    run_module(vz_sms_send.main, idempotency_key=old_key, **args)  # as the earlier version recorded it
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and not result["changed"] and result["idempotency_key"] == old_key and len(sms_bodies(fake)) == 1
    assert old_key != derive_key(ACCOUNT, filters, "hello", "7-bit")


UNKNOWN = {"kind": "mdn", "id": "5559999999"}


@pytest.mark.parametrize("unknown_devices", ["fail", "skip"])
def test_check_mode_checks_the_devices_against_the_account(fake, run_module, unknown_devices):
    args = dict(account_name=ACCOUNT, devices=[*DEVICES[:2], UNKNOWN, DEVICES[2]], sms_message="hello", batch_size=2, unknown_devices=unknown_devices)
    result, failed = run_module(vz_sms_send.main, check_mode=True, **args)
    assert result["devices_unknown"] == [UNKNOWN] and sms_bodies(fake) == []
    what = "1 device(s) are not in account %s: mdn:5559999999" % ACCOUNT
    if unknown_devices == "fail":
        assert failed and result["msg"] == ("Check mode: %s (devices_unknown); a send would fail at batch 2 of 2, which ThingSpace refuses whole. "
                                            "Remove them, or set unknown_devices: skip to send to the others" % what)
    else:
        assert not failed and result["changed"] and result["devices_sent"] == 3 and UNKNOWN not in result["devices_preview"]
        assert result["warnings"] == ["%s (devices_unknown); a send leaves them out (unknown_devices: skip)" % what]
    result, failed = run_module(vz_sms_send.main, check_mode=True, devices=DEVICES, sms_message="hello")
    assert not failed and result["warnings"] == [
        "Check mode did not check the devices against an account (no account_name): a send fails if ThingSpace does not know one of them; "
        "give account_name to have them checked"]


def test_a_send_refused_for_an_unknown_device_names_it_and_sends_nothing(fake, run_module):
    fake.refuse_unknown_devices = True
    args = dict(devices=[*DEVICES[:2], UNKNOWN], sms_message="hello")
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, **args)
    assert failed and not result["changed"] and result["devices_unknown"] == [UNKNOWN]
    assert result["msg"] == ("Batch 1 of 1 failed, nothing of it was sent: Failed to send SMS: HTTP 400 REQUEST_FAILED.DeviceNotFound: Device was "
                             "not found.; 1 device(s) of it are not in account %s: mdn:5559999999 (devices_unknown). Remove them, or set "
                             "unknown_devices: skip to send to the others" % ACCOUNT)
    result, failed = run_module(vz_sms_send.main, **args)
    assert failed and result["msg"].endswith("; ThingSpace does not say which device it does not know: give account_name to have the devices it "
                                             "refuses named (and unknown_devices: skip to send to the others)")
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, devices=DEVICES[:2], sms_message="hello")
    assert not failed and result["devices_sent"] == 2  # the refused batch was released


def test_unknown_devices_skip_sends_the_rest_once_and_records_the_refused(fake, run_module, state_dir):
    fake.refuse_unknown_devices = True
    fake.script("POST", SEND, (400, {"errorCode": "REQUEST_FAILED.DeviceNotFound", "errorMessage": "Device was not found."}), (200, {"requestId": "r1"}),
                (400, {"errorCode": "REQUEST_FAILED.DeviceNotFound", "errorMessage": "Device was not found."}), (200, {"requestId": "r2"}))
    wave = [DEVICES[0], UNKNOWN, DEVICES[1], {"kind": "mdn", "id": "5559999998"}, DEVICES[2]]
    args = dict(account_name=ACCOUNT, devices=wave, sms_message="hello", batch_size=3, unknown_devices="skip")
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and result["changed"] and result["devices_sent"] == 3
    assert result["devices_unknown"] == [UNKNOWN, {"kind": "mdn", "id": "5559999998"}]
    assert result["batches"] == [{"index": 0, "devices": 2, "devices_unknown": 1, "status": "sent", "request_id": "r1"},
                                 {"index": 1, "devices": 1, "devices_unknown": 1, "status": "sent", "request_id": "r2"}]
    # Each batch: one refused request, then its known rest once (the account's device list read once).
    assert [[d["id"] for d in body["deviceIds"]] for body in sms_bodies(fake)] == [
        ["5550000001", "5559999999", "5550000002"], ["5550000001", "5550000002"], ["5559999998", "5550000003"], ["5550000003"]]
    assert fake.count("POST", LIST) == 3  # the 7 devices of the account, in pages of 3
    assert result["msg"] == "Sent to 3 device(s) in 2 request(s); ThingSpace refused 2 device(s), not in account %s (devices_unknown)" % ACCOUNT
    assert ledger_records(state_dir) == {"mdn:5550000001": ("sent", "r1"), "mdn:5550000002": ("sent", "r1"), "mdn:5550000003": ("sent", "r2"),
                                         "mdn:5559999999": ("refused", None), "mdn:5559999998": ("refused", None)}
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and not result["changed"] and len(sms_bodies(fake)) == 4
    assert result["devices_unknown"] == [UNKNOWN, {"kind": "mdn", "id": "5559999998"}] and result["devices_skipped"] == 5
    assert result["warnings"] == ["2 device(s) were refused by ThingSpace under idempotency key %s, as not in the account (devices_unknown): "
                                  "mdn:5559999999, mdn:5559999998; they are not sent again. Correct the list, or use force: true to send to them "
                                  "again" % result["idempotency_key"]]
    result, failed = run_module(vz_sms_send.main, force=True, **args)
    assert not failed and result["devices_sent"] == 3 and result["devices_unknown"] == [UNKNOWN, {"kind": "mdn", "id": "5559999998"}]
    assert len(sms_bodies(fake)) == 8  # force sends to them again, and ThingSpace refuses them again


def test_a_batch_of_only_unknown_devices_is_refused_and_nothing_is_sent(fake, run_module, state_dir):
    fake.refuse_unknown_devices = True
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, devices=[UNKNOWN], sms_message="hello", unknown_devices="skip")
    assert not failed and not result["changed"] and result["devices_unknown"] == [UNKNOWN] and result["devices_sent"] == 0
    assert result["batches"] == [{"index": 0, "devices": 0, "devices_unknown": 1, "status": "refused"}] and len(sms_bodies(fake)) == 1
    assert ledger_records(state_dir) == {"mdn:5559999999": ("refused", None)}
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, devices=[UNKNOWN], sms_message="hello", unknown_devices="skip")
    assert not failed and not result["changed"] and len(sms_bodies(fake)) == 1
    assert result["msg"] == ("Nothing to send: ThingSpace refused 1 device(s) as not in the account (devices_unknown) under idempotency key %s"
                             % result["idempotency_key"])


def test_unknown_devices_skip_needs_the_account_before_any_request(fake, run_module):
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", unknown_devices="skip")
    assert failed and result["msg"] == ("unknown_devices: skip needs account_name: the devices ThingSpace refuses are found in the account's "
                                        "device list") and fake.calls == []


def test_devices_refused_as_unknown_are_not_counted_as_unconfirmed_deliveries(fake, run_module, state_dir):
    from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import delivery_report

    fake.refuse_unknown_devices = True
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, devices=[*DEVICES[:2], UNKNOWN], sms_message="hello",
                                idempotency_key="wave-u", unknown_devices="skip")
    assert not failed and result["devices_unknown"] == [UNKNOWN]
    ledger = Ledger(str(state_dir / "ledger.sqlite3"))
    try:
        report = delivery_report(ledger, service_scope(API), "wave-u")
    finally:
        ledger.close()
    assert report["states"]["unconfirmed"] == 0 and report["states"]["accepted"] == 2 and report["total"] == 2


def test_nothing_to_send_does_not_count_refused_devices_as_sent(fake, run_module):
    fake.refuse_unknown_devices = True
    args = dict(account_name=ACCOUNT, devices=[*DEVICES[:2], UNKNOWN], sms_message="hello", unknown_devices="skip")
    run_module(vz_sms_send.main, **args)
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and result["msg"] == ("Nothing to send: the 2 device(s) already got this message under idempotency key %s; ThingSpace "
                                            "refused 1 device(s) as not in the account (devices_unknown)" % result["idempotency_key"])


def suspend(fake, *numbers, state="suspend"):
    """Put devices of the fake's fleet (numbered from 1) in ``state``."""
    for n in numbers:
        fake.devices[n - 1]["carrierInformations"][0]["state"] = state


def test_check_mode_reports_inactive_devices_of_a_selection_and_warns(fake, run_module):
    suspend(fake, 1)
    suspend(fake, 3, state="deactive")
    result, failed = run_module(vz_sms_send.main, check_mode=True, account_name=ACCOUNT, group_name="west", sms_message="hello")
    assert not failed and result["devices_sent"] == 4 and result["devices_skipped"] == 0
    assert result["devices_inactive"] == [{"kind": "iccid", "id": "89148000000800000001", "state": "suspend"},
                                          {"kind": "iccid", "id": "89148000000800000003", "state": "deactive"}]
    assert result["warnings"] == ["2 device(s) this run would send to are not active (1 deactive, 1 suspend; devices_inactive): ThingSpace answers "
                                  "Undelivered for them. Set skip_inactive: true to leave them out until they are active"]
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, group_name="west", sms_message="hello")
    assert not failed and result["devices_sent"] == 4 and len(result["devices_inactive"]) == 2 and "this run sends to" in result["warnings"][0]
    assert len(sms_bodies(fake)[0]["deviceIds"]) == 4
    result, failed = run_module(vz_sms_send.main, check_mode=True, account_name=ACCOUNT, group_name="west", sms_message="hello",
                                filter_tracking="selection", idempotency_key="whole")
    assert not failed and [d["state"] for d in result["devices_inactive"]] == ["suspend", "deactive"] and result["devices_skipped"] is None


def test_skip_inactive_leaves_them_out_unrecorded_and_a_later_run_sends_them(fake, run_module):
    suspend(fake, 1, 3)
    args = dict(account_name=ACCOUNT, group_name="west", sms_message="hello", skip_inactive=True)
    result, failed = run_module(vz_sms_send.main, check_mode=True, **args)
    assert not failed and result["devices_sent"] == 2 and result["devices_skipped"] == 2 and sms_bodies(fake) == []
    assert result["msg"].endswith("(2 devices); 2 device(s) not active would be left out (skip_inactive: true; devices_inactive)")
    assert [d["id"] for d in result["devices_preview"]] == ["89148000000800000005", "89148000000800000007"]
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and result["changed"] and result["devices_sent"] == 2 and result["devices_skipped"] == 2
    assert [d["id"] for d in result["devices_inactive"]] == ["89148000000800000001", "89148000000800000003"]
    assert result["warnings"] == [] and result["msg"] == ("Sent to the selection group_name=west (2 devices) in 1 request(s); 2 device(s) not "
                                                          "active were left out (skip_inactive: true; devices_inactive)")
    assert [d["id"] for d in sms_bodies(fake)[0]["deviceIds"]] == ["89148000000800000005", "89148000000800000007"]
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and not result["changed"] and result["devices_skipped"] == 4
    assert result["msg"] == ("Nothing to send: the 2 device(s) left to send under idempotency key %s are not active (devices_inactive; "
                             "skip_inactive: true)" % result["idempotency_key"])
    suspend(fake, 1, 3, state="active")
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and result["devices_sent"] == 2 and result["devices_inactive"] == [] and result["warnings"] == []
    assert [d["id"] for d in sms_bodies(fake)[1]["deviceIds"]] == ["89148000000800000001", "89148000000800000003"]


def test_skip_inactive_with_a_device_list_reads_the_device_list_once(fake, run_module):
    suspend(fake, 2)
    args = dict(account_name=ACCOUNT, devices=DEVICES, sms_message="hello", skip_inactive=True)
    result, failed = run_module(vz_sms_send.main, check_mode=True, **args)
    assert not failed and result["devices_sent"] == 4 and result["devices_skipped"] == 1
    assert result["devices_inactive"] == [{"kind": "mdn", "id": "5550000002", "state": "suspend"}]
    pages = fake.count("POST", "/api/m2m/v1/devices/actions/list")
    assert pages == 3  # 7 devices in pages of 3, read once for the unknown devices and the states
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and result["devices_sent"] == 4 and DEVICES[1] not in sms_bodies(fake)[0]["deviceIds"]
    assert fake.count("POST", "/api/m2m/v1/devices/actions/list") == 2 * pages
    without = run_module(vz_sms_send.main, account_name=ACCOUNT, devices=DEVICES, sms_message="hello", check_mode=True)[0]
    assert without["devices_inactive"] == [{"kind": "mdn", "id": "5550000002", "state": "suspend"}] and without["devices_sent"] == 1


def test_a_device_list_sent_without_skip_inactive_reads_no_states(fake, run_module):
    suspend(fake, 2)
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, devices=DEVICES, sms_message="hello")
    assert not failed and result["devices_sent"] == 5 and result["devices_inactive"] is None
    assert fake.count("POST", "/api/m2m/v1/devices/actions/list") == 0


@pytest.mark.parametrize("args, message", [
    (dict(account_name=ACCOUNT, group_name="west", filter_tracking="selection"),
     "skip_inactive: needs the devices one by one; filter_tracking: selection sends the selection whole, to its inactive devices too. Use "
     "filter_tracking: device"),
    (dict(devices=DEVICES), "skip_inactive: needs account_name: the state of each device is read from the account's device list"),
])
def test_skip_inactive_fails_before_any_request_where_it_cannot_work(fake, run_module, args, message):
    result, failed = run_module(vz_sms_send.main, sms_message="hello", skip_inactive=True, **args)
    assert failed and result["msg"] == message and fake.calls == []
