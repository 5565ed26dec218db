"""What an operator reads back from the ledger through ansible-playbook against the emulator: module_defaults of the
action group reach every module that takes ledger options (vz_sms_delivery_info and vz_ledger_copy among them), and a
wave sent under http://127.0.0.1:PORT is warned about, not silently shown as never sent, when the re-run spells the
API URL http://localhost:PORT; an unconfirmed wave is settled by the callbacks an event source recorded."""

from __future__ import annotations

import pytest
from harness import ACCOUNT, SMS_PATH, Ansible, devices, ledger_rows, receipts, task, wait_until
from test_receiver_kill import Receiver, free_port, register_receiver

from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger

KEY = "wave-read-back"


def send(**extra):
    return task("vz_sms_send", "send", account_name=ACCOUNT, devices=devices(0, 5), sms_message="FW=7.0", idempotency_key=KEY, **extra)


def test_module_defaults_of_the_group_give_the_ledger_options_to_every_module(tmp_path, emulator, database):
    """A block of group defaults with credentials and ledger_path, then one with ledger_url: a module that did not take
    them all would fail with "Unsupported parameters", one outside the group would read the default ledger."""
    sqlite = Ansible(tmp_path / "sqlite", emulator.url)
    ledger_path = str(tmp_path / "elsewhere" / "wave.sqlite3")
    sqlite.defaults = lambda credentials=True: dict(Ansible.defaults(sqlite, credentials), ledger_path=ledger_path, account_name=ACCOUNT)
    copy_into = {"ledger_url": database.url, "ledger_password": database.password, "ledger_schema": database.schema}
    play = sqlite.run([
        send(),
        task("vz_sms_delivery_info", "info", idempotency_key=KEY),
        task("vz_sms_receive", "receive"),
        task("vz_ledger_copy", "copied", **copy_into),
    ])
    results = play.results
    for name in ("send", "info", "receive", "copied"):
        assert not results[name].get("failed"), play.describe()
    assert results["send"]["devices_sent"] == 5 and results["info"]["total"] == 5 and results["info"]["states"]["accepted"] == 5
    assert results["copied"]["sends_copied"] == 5

    postgresql = Ansible(tmp_path / "postgresql", emulator.url)
    postgresql.defaults = lambda credentials=True: dict(Ansible.defaults(postgresql, credentials), **copy_into)
    play = postgresql.run([send(), task("vz_sms_delivery_info", "info", idempotency_key=KEY)])
    results = play.results
    assert not results["send"].get("failed") and not results["send"]["changed"] and results["send"]["devices_skipped"] == 5, play.describe()
    assert results["info"]["total"] == 5, play.describe()
    assert receipts(emulator, devices(0, 5)) == [1] * 5


def test_a_wave_sent_under_127_0_0_1_is_warned_about_when_the_re_run_says_localhost(tmp_path, emulator):
    ansible = Ansible(tmp_path, emulator.url)
    localhost = emulator.url.replace("127.0.0.1", "localhost")
    assert localhost != emulator.url
    play = ansible.run([send()])
    assert play.results["send"]["devices_sent"] == 5, play.describe()

    play = ansible.run([dict(send(api_url=localhost), check_mode=True), task("vz_sms_delivery_info", "info", idempotency_key=KEY, api_url=localhost)])
    preview, info = play.results["send"], play.results["info"]
    assert preview["changed"] and preview["other_api_urls"] == [{"api_url": emulator.url, "targets": 5}], play.describe()
    assert "idempotency key %s also has 5 target(s) recorded under another API URL, %s;" % (KEY, emulator.url) in play.stdout + play.stderr
    assert info["failed"] and info["msg"].endswith("; %s has 5 target(s) under it. If that is the same service (localhost and 127.0.0.1, say), "
                                                   "set api_url to it" % emulator.url)
    assert receipts(emulator, devices(0, 5)) == [1] * 5


@pytest.mark.both_ledgers
def test_an_unconfirmed_wave_is_settled_by_the_callbacks_the_receiver_recorded(emulator, ansible, tmp_path):
    """ThingSpace processes a send but answers 500: the wave is unconfirmed. The callbacks of its devices reach the event
    source (tests/utils/callback_receiver.py) with the request id the run never got; the report and a check-mode re-run
    show the devices settled, the re-run records them, and resend_unconfirmed has nothing left to send."""
    Ledger(ansible.ledger).close()  # created, as the receiver would
    port = free_port()
    receiver = Receiver(ansible, port, tmp_path / "events", tmp_path / "receiver.log")
    receiver.start()
    try:
        register = register_receiver(port)
        emulator.fault(path=r"^%s$" % SMS_PATH, method="POST", count=1, status=500, process=True)
        play = ansible.run([*register, send()])
        assert play.results["send"]["failed"] and len(play.results["send"]["devices_unconfirmed"]) == 5, play.describe()
        [request_id] = {message["requestId"] for message in emulator.sms()}

        def recorded():
            ledger = Ledger(ansible.ledger, read_only=True)
            try:
                return ledger.store.rows("SELECT count(*) FROM callbacks WHERE type = 'sms_sent'")[0][0] == 5
            finally:
                ledger.close()

        wait_until(recorded, "the five sent callbacks to be recorded")
    finally:
        receiver.stop()
    settled = [dict(device, request_id=request_id) for device in devices(0, 5)]

    play = ansible.run([task("vz_sms_delivery_info", "info", idempotency_key=KEY), dict(send(resend_unconfirmed=True), check_mode=True)])
    info, preview = play.results["info"], play.results["send"]
    assert info["unconfirmed_resolved"] == settled and info["states"]["unconfirmed"] == 0, play.describe()
    assert preview["unconfirmed_resolved"] == settled and not preview["changed"] and preview["devices_sent"] == 0
    play = ansible.run([send(), task("vz_sms_send", "again", account_name=ACCOUNT, devices=devices(0, 5), sms_message="FW=7.0",
                                     idempotency_key=KEY, resend_unconfirmed=True)])
    assert play.results["send"]["unconfirmed_resolved"] == settled and play.results["again"]["devices_sent"] == 0, play.describe()
    assert {state for _target, state, _claim in ledger_rows(ansible)} == {"sent"}
    assert receipts(emulator, devices(0, 5)) == [1] * 5
