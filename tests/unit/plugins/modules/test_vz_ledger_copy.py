"""vz_ledger_copy: an SQLite ledger written by the modules, copied into the session's PostgreSQL server; the sends
and starts it knew are then neither repeated nor lost, and a second copy changes nothing."""

from __future__ import annotations

import multiprocessing

import yaml
from ledger_0_1_0 import schema_1_ledger

from ansible_collections.thingspace.m2m.plugins.module_utils.callback_events import callback_event
from ansible_collections.thingspace.m2m.plugins.module_utils.deliveries import StoreRecorder
from ansible_collections.thingspace.m2m.plugins.module_utils.env import ENV_VARS
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger
from ansible_collections.thingspace.m2m.plugins.modules import vz_ledger_copy, vz_sms_campaign, vz_sms_delivery_info, vz_sms_send, vz_sms_start_callbacks

from fake_api import ACCOUNT, API, CREDENTIALS

DEVICES = [{"kind": "mdn", "id": "555000%04d" % n} for n in range(1, 7)]
# The options run_module adds for the ThingSpace modules, which vz_ledger_copy does not take.
NO_API = dict.fromkeys([*CREDENTIALS, "api_url", "retries"])
SEND = r"/api/m2m/v1/sms$"


def sms_bodies(fake):
    return [body for method, path, body in fake.calls if method == "POST" and path == "/api/m2m/v1/sms"]


def _write_sqlite_history(fake, run_module, state_dir):
    """What a controller's SQLite ledger holds after some work: 3 devices sent, of which the callbacks source recorded
    one Delivered and one sent, 1 unknown (a 500), 1 pending of a run that died, a filter send tracked as a selection,
    and a callbacks start."""
    result = run_module(vz_sms_send.main, devices=DEVICES[:3], sms_message="hello", idempotency_key="wave-1")[0]
    assert result["devices_sent"] == 3
    recorder = StoreRecorder(str(state_dir / "ledger.sqlite3"))
    request_id = result["request_ids"][0]
    ids = [[{"kind": "Mdn", "id": device["id"]}] for device in DEVICES[:2]]
    delivered = {"smsDeliveryResponse": {"confirmation": "Delivered"}}
    recorder.record([callback_event("EnhancedConnectivityService", ACCOUNT, dict(requestId=request_id, deviceIds=ids[0], status="Success")),
                     callback_event("EnhancedConnectivityService", ACCOUNT, dict(requestId=request_id, deviceIds=ids[1], status="Success")),
                     callback_event("SMSDeliveryConfirmation", ACCOUNT, dict(requestId=request_id, deviceIds=ids[0], deviceResponse=delivered))])
    recorder.close()
    fake.script("POST", SEND, (500, {"errorCode": "SERVER_ERROR", "errorMessage": "boom"}))
    assert run_module(vz_sms_send.main, devices=DEVICES[3:4], sms_message="hello", idempotency_key="wave-1")[1]
    assert not run_module(vz_sms_send.main, account_name=ACCOUNT, group_name="west", sms_message="hi", filter_tracking="selection",
                          idempotency_key="group-1")[1]
    assert not run_module(vz_sms_start_callbacks.main, account_name=ACCOUNT)[1]


def _die_while_sending(path, target):
    ledger = Ledger(path)
    ledger.claim("http://127.0.0.1:9", "wave-1", [target])


def test_a_copied_ledger_is_not_repeated_nor_lost(fake, run_module, postgresql, state_dir):
    _write_sqlite_history(fake, run_module, state_dir)
    killed = multiprocessing.Process(target=_die_while_sending, args=(str(state_dir / "ledger.sqlite3"), "mdn:%s" % DEVICES[4]["id"]))
    killed.start()
    killed.join(30)
    sqlite_records = sorted(Ledger(str(state_dir / "ledger.sqlite3"), read_only=True).records())
    database = {"ledger_url": postgresql.url(), "ledger_password": postgresql.password, "ledger_schema": postgresql.new_schema()}

    preview, failed = run_module(vz_ledger_copy.main, check_mode=True, **NO_API, **database)
    assert not failed and preview["changed"] and (preview["sends_copied"], preview["starts_copied"], preview["callbacks_copied"]) == (6, 1, 3)
    assert postgresql.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (database["ledger_schema"],)) == []

    copied, failed = run_module(vz_ledger_copy.main, **NO_API, **database)
    assert not failed and copied["changed"], copied["msg"]
    assert {name: copied[name] for name in ("idempotency_keys", "sends", "sends_copied", "starts", "starts_copied", "callbacks", "callbacks_copied")} == {
        "idempotency_keys": 2, "sends": 6, "sends_copied": 6, "starts": 1, "starts_copied": 1, "callbacks": 3, "callbacks_copied": 3}
    assert copied["msg"] == ("Copied 6 of 6 send record(s), 1 of 1 callbacks start(s) and 3 of 3 callback(s) from %s into "
                             "postgres@127.0.0.1:%d/postgres (schema %s)" % (state_dir / "ledger.sqlite3", postgresql.port, database["ledger_schema"]))
    from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database

    assert sorted(Ledger(Database(database["ledger_url"], database["ledger_password"], database["ledger_schema"])).records()) == sqlite_records

    again, failed = run_module(vz_ledger_copy.main, **NO_API, **database)
    assert not failed and not again["changed"] and (again["sends_copied"], again["starts_copied"], again["callbacks_copied"]) == (0, 0, 0)
    delivery = run_module(vz_sms_delivery_info.main, **dict(NO_API, api_url=API), idempotency_key="wave-1", **database)[0]
    assert delivery["devices"]["Delivered"] == DEVICES[:1] and delivery["devices"]["sent"] == DEVICES[1:2] and delivery["states"]["accepted"] == 1

    # On PostgreSQL: the sent devices are not sent again, the unknown and dead-pending ones are unconfirmed, the
    # purpose is known, the selection and the start are remembered.
    sent_before = len(sms_bodies(fake))
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", idempotency_key="wave-1", **database)
    assert not failed and result["devices_sent"] == 1 and result["devices_unconfirmed"] == DEVICES[3:5]
    assert run_module(vz_sms_send.main, devices=DEVICES, sms_message="other", idempotency_key="wave-1", **database)[1]
    result, failed = run_module(vz_sms_send.main, account_name=ACCOUNT, group_name="west", sms_message="hi", filter_tracking="selection",
                                idempotency_key="group-1", **database)
    assert not failed and not result["changed"]
    assert not run_module(vz_sms_start_callbacks.main, account_name=ACCOUNT, **database)[0]["first_start"]
    assert len(sms_bodies(fake)) == sent_before + 1


def test_a_key_used_for_another_send_in_postgresql_refuses_the_whole_copy(fake, run_module, postgresql, state_dir):
    database = {"ledger_url": postgresql.url(), "ledger_password": postgresql.password, "ledger_schema": postgresql.new_schema()}
    assert not run_module(vz_sms_send.main, devices=DEVICES[5:], sms_message="another text", idempotency_key="wave-1", **database)[1]
    _write_sqlite_history(fake, run_module, state_dir)
    result, failed = run_module(vz_ledger_copy.main, **NO_API, **database)
    assert failed and result["msg"] == ("The idempotency keys 'wave-1' were used for other sends in postgres@127.0.0.1:%d/postgres (schema %s) than in "
                                        "%s; nothing was copied. Copy into another ledger_schema, or resolve them by hand"
                                        % (postgresql.port, database["ledger_schema"], state_dir / "ledger.sqlite3"))
    assert postgresql.execute('SELECT count(*) FROM "%s".sends' % database["ledger_schema"]) == [(1,)]
    assert postgresql.execute('SELECT count(*) FROM "%s".starts' % database["ledger_schema"]) == [(0,)]


def _claim_and_hold(path, started, finish):
    ledger = Ledger(path)
    ledger.claim("http://127.0.0.1:9", "wave-9", ["mdn:1"])
    started.set()
    finish.wait(30)


def test_a_ledger_with_a_batch_in_flight_is_not_copied(fake, run_module, postgresql, state_dir):
    path = str(state_dir / "ledger.sqlite3")
    _write_sqlite_history(fake, run_module, state_dir)
    started, finish = multiprocessing.Event(), multiprocessing.Event()
    sender = multiprocessing.Process(target=_claim_and_hold, args=(path, started, finish))
    sender.start()
    try:
        assert started.wait(30)
        result, failed = run_module(vz_ledger_copy.main, **NO_API, ledger_url=postgresql.url(), ledger_password=postgresql.password)
    finally:
        finish.set()
        sender.join(30)
    assert failed and result["msg"] == "The ledger %s has a batch in flight (a run is sending it); nothing was copied. Copy it when no run is sending" % path


def test_a_missing_sqlite_ledger_is_named(run_module, postgresql, state_dir):
    result, failed = run_module(vz_ledger_copy.main, **NO_API, ledger_url=postgresql.url(), ledger_password=postgresql.password)
    assert failed and result["msg"] == ("There is no SQLite ledger at %s; nothing was copied. Set ledger_path to the ledger to copy"
                                        % (state_dir / "ledger.sqlite3"))


def test_a_ledger_of_0_1_0_is_migrated_then_copied(run_module, postgresql, state_dir, tmp_path):
    path = tmp_path / "old" / "ledger.sqlite3"
    schema_1_ledger(path, [(1, "%s/|%s" % (API.upper(), ACCOUNT), "wave-0")], [(1, "meid:a10000009296f2", "r1")])
    database = {"ledger_url": postgresql.url(), "ledger_password": postgresql.password, "ledger_schema": postgresql.new_schema()}
    result, failed = run_module(vz_ledger_copy.main, **NO_API, ledger_path=str(path), **database)
    assert not failed and result["sends_copied"] == 1
    assert postgresql.execute('SELECT k.scope, s.target FROM "{0}".sends s JOIN "{0}".send_keys k ON k.id = s.key_id'.format(database["ledger_schema"])) == [
        (API, "meid:A10000009296F2")]


def test_its_options_name_the_environment_variables_of_env_py():
    options = yaml.safe_load(vz_ledger_copy.DOCUMENTATION)["options"]
    # account_name is only accepted, for module_defaults of the group; it has no variable.
    assert set(options) - set(ENV_VARS) == {"account_name"}
    for option, doc in options.items():
        if option == "account_name":
            continue
        assert "E(%s)" % ENV_VARS[option] in " ".join(doc["description"])


def test_a_campaign_moves_with_its_devices_and_continues_on_postgresql_without_sending_twice(fake, run_module, postgresql, state_dir):
    campaign = dict(name="apn-1", account_name=ACCOUNT, devices=DEVICES, sms_message="APN=x", waves=[2, "100%"])
    assert not run_module(vz_sms_campaign.main, **campaign)[1]
    recorder = StoreRecorder(str(state_dir / "ledger.sqlite3"))
    sends = Ledger(str(state_dir / "ledger.sqlite3")).sends("http://127.0.0.1:9", "apn-1")
    recorder.record([callback_event("SMSDeliveryConfirmation", ACCOUNT, dict(requestId=request_id, deviceIds=[{"kind": "Mdn", "id": target[4:]}],
                                                                             deviceResponse={"smsDeliveryResponse": {"confirmation": "Delivered"}}))
                     for target, (_state, request_id) in sends.items()])
    recorder.close()
    database = {"ledger_url": postgresql.url(), "ledger_password": postgresql.password, "ledger_schema": postgresql.new_schema()}
    copied, failed = run_module(vz_ledger_copy.main, **NO_API, **database)
    assert not failed and (copied["campaigns"], copied["campaigns_copied"]) == (1, 1)
    again, failed = run_module(vz_ledger_copy.main, **NO_API, **database)
    assert not failed and not again["changed"] and again["campaigns_copied"] == 0
    # On PostgreSQL the gate reads the copied deliveries: wave 2 goes out, and the canary is not sent again.
    result, failed = run_module(vz_sms_campaign.main, name="apn-1", sms_message="APN=x", **database)
    assert not failed and (result["wave"], result["devices_sent"], result["delivered"]) == (2, 4, 2)
    assert sorted(device["id"] for body in sms_bodies(fake) for device in body["deviceIds"]) == sorted(device["id"] for device in DEVICES)


def test_a_campaign_created_otherwise_in_postgresql_refuses_the_whole_copy(fake, run_module, postgresql, state_dir):
    database = {"ledger_url": postgresql.url(), "ledger_password": postgresql.password, "ledger_schema": postgresql.new_schema()}
    assert not run_module(vz_sms_campaign.main, name="apn-1", account_name=ACCOUNT, devices=DEVICES[:1], sms_message="APN=y", **database)[1]
    assert not run_module(vz_sms_campaign.main, name="apn-1", account_name=ACCOUNT, devices=DEVICES, sms_message="APN=x")[1]
    result, failed = run_module(vz_ledger_copy.main, **NO_API, **database)
    assert failed and result["msg"] == ("The campaigns apn-1 (http://127.0.0.1:9) were created with other options in postgres@127.0.0.1:%d/postgres "
                                        "(schema %s) than in %s; nothing was copied. Copy into another ledger_schema, or resolve them by hand"
                                        % (postgresql.port, database["ledger_schema"], state_dir / "ledger.sqlite3"))
    assert postgresql.execute('SELECT count(*) FROM "%s".sends' % database["ledger_schema"]) == [(1,)]
