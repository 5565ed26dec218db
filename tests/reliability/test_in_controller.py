"""vz_sms_send on the controller runs in Ansible's worker (the action plugin), elsewhere and with a task environment
as a module: both give the same results for a send, a re-run, an unconfirmed send and its warning, check mode, refused
input, a secret in a value, a task with no_log and a devices_file, and only the module path ships an AnsiballZ payload."""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness import ACCOUNT, AS_MODULE, CREDENTIALS, SMS_PATH, Ansible, devices, task

FLEET_FILE = "fleet.json"
REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A time the ledger reports (duplicates' last_at, and in their warnings).
LEDGER_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def scenarios(missing):
    """The tasks both plays run; ``missing`` is a devices_file path that does not exist."""
    send = {"account_name": ACCOUNT, "sms_message": "PARITY", "idempotency_key": "parity"}
    by_file = {"account_name": ACCOUNT, "sms_message": "FILE", "idempotency_key": "file"}
    unsure = {"account_name": ACCOUNT, "devices": devices(30, 32), "sms_message": "UNSURE", "idempotency_key": "unsure"}
    return [
        task("vz_sms_send", "unconfirmed", **unsure),
        task("vz_sms_send", "warned", **unsure),
        task("vz_sms_send", "sent", devices=devices(0, 3), **send),
        task("vz_sms_send", "rerun", devices=devices(0, 3), **send),
        dict(task("vz_sms_send", "preview", devices=devices(0, 5), **send), check_mode=True),
        dict(task("vz_sms_send", "preview_filter", account_name=ACCOUNT, group_name="all", sms_message="PARITY"), check_mode=True),
        task("vz_sms_send", "bad_device", devices=[{"kind": "phone", "id": "1"}], sms_message="x"),
        task("vz_sms_send", "exclusive", devices=devices(0, 1), group_name="all", sms_message="x"),
        task("vz_sms_send", "unknown_option", devices=devices(0, 1), sms_message="x", colour="red"),
        task("vz_sms_send", "no_credentials", devices=devices(0, 1), sms_message="x", password=""),
        task("vz_sms_send", "masked", devices=devices(10, 12), sms_message="x", idempotency_key="key-%s" % CREDENTIALS["password"]),
        dict(task("vz_sms_send", "hidden", devices=devices(20, 22), sms_message="x"), no_log=True),
        task("vz_sms_send", "from_file", devices_file=FLEET_FILE, **by_file),
        task("vz_sms_send", "file_then_list", devices=devices(40, 44), **by_file),
        task("vz_sms_send", "file_missing", devices_file=str(missing), **by_file),
        task("vz_sms_send", "file_not_found", devices_file="absent.json", **by_file),
    ]


def write_fleet_file(workdir):
    """The devices_file of the scenarios, in the playbook's files/ directory, where a relative path is looked for."""
    (workdir / "files").mkdir(parents=True)
    (workdir / "files" / FLEET_FILE).write_text(json.dumps({"devices": devices(40, 43)}), encoding="utf-8")


def _same_ids(value):
    """``value`` with every request id and ledger time replaced by a placeholder, so two runs compare."""
    if isinstance(value, dict):
        return {key: _same_ids(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_same_ids(item) for item in value]
    if isinstance(value, str):
        return "<request id>" if REQUEST_ID.match(value) else LEDGER_TIME.sub("<time>", value)
    return value


def test_the_action_plugin_and_the_module_return_the_same_results(emulator, tmp_path):
    keep = {"ANSIBLE_KEEP_REMOTE_FILES": "1"}
    # The first send of each play is processed, then answered 500: unconfirmed, and a warning on its re-run.
    emulator.fault(path=r"^/api/m2m/v1/sms$", method="POST", count=1, status=500, process=True)
    missing = tmp_path / "absent.json"
    in_controller = Ansible(tmp_path / "controller", emulator.url)
    write_fleet_file(in_controller.workdir)
    played = in_controller.run(scenarios(missing), env=keep, args=("-v",))
    emulator.fault(path=r"^/api/m2m/v1/sms$", method="POST", count=1, status=500, process=True)
    as_module = Ansible(tmp_path / "module", emulator.url)
    write_fleet_file(as_module.workdir)
    module_play = as_module.run([dict(item, **AS_MODULE) for item in scenarios(missing)], env=keep, args=("-v",))

    # A relative devices_file is looked for next to each play's playbook.
    for play in (played, module_play):
        missing_message = play.results.pop("file_not_found")["msg"]
        assert missing_message == "devices_file: cannot find absent.json on the controller; looked for %s" % ", ".join(
            str(Path(play.command[-1]).parent / where / "absent.json") for where in ("files", ""))
    assert _same_ids(played.results) == _same_ids(module_play.results)
    results = played.results
    assert results["unconfirmed"]["failed"] and results["warned"]["devices_unconfirmed"] == devices(30, 32)
    assert any("unconfirmed send" in warning for warning in results["warned"]["warnings"])
    assert results["sent"]["devices_sent"] == 3 and results["rerun"]["devices_sent"] == 0
    assert results["preview"]["devices_sent"] == 2 and results["preview"]["changed"]
    assert results["preview_filter"]["devices_resolved"] == 300
    # The group holds the devices "sent" got the same message under another key.
    assert [dict(found, last_at=None) for found in results["preview_filter"]["duplicates"]] == [{"idempotency_key": "parity", "devices": 3, "last_at": None}]
    assert "devices[0].kind: 'phone' is not a device kind" in results["bad_device"]["msg"]
    assert results["exclusive"]["msg"] == "parameters are mutually exclusive: devices|group_name"
    assert results["unknown_option"]["msg"].startswith("Unsupported parameters for (thingspace.m2m.vz_sms_send) module: colour.")
    assert results["no_credentials"]["msg"].startswith("Missing credentials: a session token needs username and password")
    assert results["masked"]["idempotency_key"] == "key-********"
    # devices_file is found in the playbook's files/ directory, on the controller, and copied to the host for the module.
    assert results["from_file"]["devices_sent"] == 3 and results["file_then_list"]["devices_sent"] == 1
    assert results["file_missing"]["msg"] == "devices_file: cannot find %s on the controller" % missing
    for play in (played, module_play):
        assert play.results["sent"]["request_ids"][0] in play.stdout
        assert play.results["hidden"]["request_ids"][0] not in play.stdout and "'no_log: true' was specified" in play.stdout
    # Each play sent 2 + 3 + 2 + 2 + 3 + 1 devices, in one request each; the module ran only in the second (not for the
    # missing files, which fail before).
    assert len(emulator.requests(method="POST", path=SMS_PATH)) == 12
    assert not list((tmp_path / "controller").rglob("AnsiballZ_vz_sms_send.py"))
    assert len(list((tmp_path / "module").rglob("AnsiballZ_vz_sms_send.py"))) == len(scenarios(missing)) - 2
