"""send.py at fleet scale (issue 24): a devices_file read as it streams, whatever the chunk boundaries cut, and the
memory a million-device send holds: its devices once, one string each; a re-run's ledger diff without every row; the
check-mode preview of a campaign (SmsSend in check mode, the account's device list read) with its selection once."""

from __future__ import annotations

import json
import tracemalloc
import uuid

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils import campaign, send
from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Credentials
from ansible_collections.thingspace.m2m.plugins.module_utils.client import ThingSpaceClient
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import NEW, SENT, Ledger

from fake_api import ACCOUNT, API, CREDENTIALS

PARAMS = {"account_name": None, "devices": None, "group_name": None, "service_plan": None, "custom_fields": None, "sms_message": "hello",
          "data_encoding": "7-bit", "idempotency_key": None, "max_devices": None, "allow_empty": False, "unknown_devices": "fail",
          "skip_inactive": False, "batch_size": 10000, "filter_tracking": "device"}
FILES = [
    '[{"kind": "mdn", "id": "5550000001"}, {"kind": "MEID", "id": "a1000000000001"}]',
    '  {\n "devices" :\n [ {"id": "5550000001", "kind": "mdn"} ,{"kind":"mdn","id":"5550000002"}\n]\n}\n ',
    '{"devices": []}',
    "[]",
    '[{"kind": "mdn", "id": "5550000001"}, 12345678901234, true, null, "x\\"]", [1, [2]], {"kind": "mdn", "id": 5550000003}]',
    # "}," inside a string and closing an object inside a value: no cut of a chunk's values there decodes.
    '[{"kind": "mdn", "id": "x},"}, {"a": {"b": "},"}, "c": [{"d": 1},{"e": 2}]}, "},", {"kind":"mdn","id":"5550000001"},\n{"id": "1"}]',
]


@pytest.mark.parametrize("text", FILES)
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
@pytest.mark.parametrize("whole", [2, 40, 1 << 16])
def test_a_devices_file_streams_what_json_reads_whatever_the_chunks(tmp_path, monkeypatch, text, chunk, whole):
    monkeypatch.setattr(send, "_CHUNK", chunk)
    monkeypatch.setattr(send, "_WHOLE", whole)
    path = tmp_path / "devices.json"
    path.write_text(text, encoding="utf-8")
    content = json.loads(text)
    assert list(send.read_devices_file(str(path))) == (content["devices"] if isinstance(content, dict) else content)


@pytest.mark.parametrize("text", ['[{"kind": "mdn", "id": "5550000001"}] x', '{"devices": [], "other": 1}', '{"devices": [1], "devices": [2]}',
                                  '[{"kind": "mdn", "id": "5550000001"},]', '[1 2]', '{"other": []}', '"devices"', "[1"])
@pytest.mark.parametrize("chunk", [2, 1 << 20])
def test_a_file_of_another_shape_fails_as_a_whole_read_says(tmp_path, monkeypatch, text, chunk):
    monkeypatch.setattr(send, "_CHUNK", chunk)
    path = tmp_path / "devices.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="devices_file: %s (is not a JSON file|holds neither)" % path):
        list(send.read_devices_file(str(path)))


def _allocated_peak(action):
    """(result of ``action``, the peak of memory allocated while it ran, in bytes, above what was allocated before)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = action()
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


COUNT = 50_000


def test_a_devices_file_is_held_once_as_one_string_per_device(tmp_path):
    path = tmp_path / "devices.json"
    path.write_text(json.dumps({"devices": [{"kind": "mdn", "id": "%d" % (5550000000 + n)} for n in range(COUNT)]}), encoding="utf-8")
    plan, peak = _allocated_peak(lambda: send.plan_send(dict(PARAMS, devices_file=str(path))))
    assert len(plan.devices) == COUNT and plan.devices[0] == ("mdn", "5550000000")
    # A target string is about 65 bytes and its place in the list of unique devices about 40: the file's JSON objects
    # (300 bytes a device) are never held all at once, nor a pair per device beside the strings.
    assert peak < 150 * COUNT, peak / COUNT


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_re_run_diff_holds_no_row_per_device(tmp_path, backend, request):
    if backend == "sqlite":
        location = str(tmp_path / "ledger.sqlite3")
    else:
        from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database

        server = request.getfixturevalue("postgresql")
        location = Database(server.url(), server.password, server.new_schema())
    targets = ["mdn:%d" % (5550000000 + n) for n in range(COUNT)]
    ledger = Ledger(location)
    try:
        for start in range(0, COUNT, 10000):
            claim_id, _claimed = ledger.claim("http://127.0.0.1", "key", targets[start:start + 10000])
            ledger.settle(claim_id, SENT, str(uuid.uuid4()))
        diff, peak = _allocated_peak(lambda: ledger.diff("http://127.0.0.1", "key", targets, NEW))
    finally:
        ledger.close()
    assert diff == ([], [], [], [])
    # The targets as a set (about 40 bytes each) and one fetch of rows at a time (2 MB); every row at once is more than 400
    # bytes a device.
    assert peak < 150 * COUNT, peak / COUNT


def _fleet(count):
    """The fake's device list: ``count`` active devices, each with its four identifiers, as ThingSpace lists them."""
    return [{"accountName": ACCOUNT, "deviceIds": [{"kind": "iccid", "id": "8914800001%09d0" % n}, {"kind": "imei", "id": "35999999%07d" % n},
                                                   {"kind": "mdn", "id": "%d" % (5550000000 + n)}, {"kind": "msisdn", "id": "1%d" % (5550000000 + n)}],
             "groupNames": [], "customFields": [], "carrierInformations": [{"servicePlan": "m2m-basic", "state": "active"}],
             "extendedAttributes": [{"key": "DeviceId", "value": str(n + 1)}]} for n in range(count)]


def _preview_peak(fake, tmp_path, count):
    """(the check-mode step's result, the peak of memory it allocated) of a new campaign of ``count`` devices of the account."""
    fake.devices, fake.device_page = _fleet(count), 500
    params = dict(name="fleet", account_name=ACCOUNT, devices=[{"kind": "mdn", "id": "%d" % (5550000000 + n)} for n in range(count)],
                  devices_file=None, group_name=None, service_plan=None, custom_fields=None, sms_message="FW=7", data_encoding="7-bit", waves=None,
                  success=None, reply_pattern=None, reply_error_pattern=None, success_threshold=None, wave_timeout=None, abort=None, max_per_minute=None,
                  skip_inactive=None, fail_on_abort=True, state="started", wait="none", wait_timeout=0)
    client = ThingSpaceClient(API, Credentials(*CREDENTIALS.values(), None, None), retries=0)
    ledger = Ledger(str(tmp_path / "ledger.sqlite3"), read_only=True)
    try:
        (result, failure), peak = _allocated_peak(lambda: campaign.step(params, client, ledger, API, check_mode=True))
    finally:
        ledger.close()
    assert failure is None and result["next_wave_preview"]["devices"] == count and result["next_wave_preview"]["devices_unknown"] == []
    return peak


def test_a_campaign_preview_holds_its_selection_once(tmp_path, fake):
    small, large = 1000, 10_000
    _preview_peak(fake, tmp_path, small)  # the modules a preview imports, loaded once
    per_device = (_preview_peak(fake, tmp_path, large) - _preview_peak(fake, tmp_path, small)) / (large - small)
    # Held at once, in bytes a device: the selection's strings (70), the campaign's devices (160), SmsSend's set of the
    # targets (30) and the account's device list by MDN (220): 480. A second copy of the selection as (kind, id) pairs
    # adds 250, a device list of every identifier of each device 400.
    assert per_device < 700, per_device


def test_a_send_after_one_that_read_the_device_list_by_another_kind_reads_it_again(fake):
    fake.devices = _fleet(3)
    client = ThingSpaceClient(API, Credentials(*CREDENTIALS.values(), None, None), retries=0)

    def sender(devices, device_list=None):
        plan = send.plan_send(dict(PARAMS, account_name=ACCOUNT, devices_file=None, devices=[{"kind": kind, "id": ident} for kind, ident in devices]))
        sender = send.SmsSend(plan, client, None, API, device_list=device_list)
        sender.targets = sender.select_targets()
        return sender

    by_mdn = sender([("mdn", "5550000000"), ("mdn", "5550000009")])
    assert by_mdn._unknown(by_mdn.targets) == ["mdn:5550000009"]
    assert by_mdn.device_list[0] == {"mdn:5550000000", "mdn:5550000001", "mdn:5550000002"}  # one identifier a device: the kind named
    # The next batch of the run names devices by their IMEI: the device list kept by MDN does not answer for them.
    by_imei = sender([("imei", "359999990000001"), ("imei", "359999990000009")], by_mdn.device_list)
    assert by_imei._unknown(by_imei.targets) == ["imei:359999990000009"]
    assert fake.count("POST", "/devices/actions/list$") == 2
    # A batch by MDN again reads nothing more.
    assert sender([("mdn", "5550000001")], by_mdn.device_list)._unknown(["mdn:5550000001"]) == []
    assert fake.count("POST", "/devices/actions/list$") == 2


def test_a_claim_that_writes_every_target_returns_them_and_one_that_writes_none_lets_its_lock_go(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger.sqlite3"))
    try:
        claim_id, claimed = ledger.claim("http://127.0.0.1", "key", ["mdn:5550000001", "mdn:5550000002"])
        assert claimed == ["mdn:5550000001", "mdn:5550000002"] and claim_id in ledger.store._held
        ledger.settle(claim_id, SENT, "r1")
        again, claimed = ledger.claim("http://127.0.0.1", "key", ["mdn:5550000002", "mdn:5550000003"])
        assert claimed == ["mdn:5550000003"]  # read back: one of the two was sent already
        nothing, claimed = ledger.claim("http://127.0.0.1", "key", [])
        assert claimed == [] and nothing not in ledger.store._held and again in ledger.store._held
    finally:
        ledger.close()
