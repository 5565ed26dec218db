"""tests/utils/returned_keys.py, the check of RETURN against what the module runs returned (make returns): it finds a
key returned but not documented and one documented but never returned, and leaves out only the failure fields of
failed runs."""

from __future__ import annotations

import returned_keys
from returned_keys import documented, problems, record

SEND = documented("vz_sms_send")


def runs(tmp_path, *recorded):
    """Every module run once with its RETURN's keys, then ``recorded`` (module, keys, failed)."""
    for path in sorted(returned_keys.MODULES.glob("*.py")):
        record(tmp_path, path.stem, documented(path.stem) | {"changed", "_ansible_no_log"}, False)
    for module, keys, failed in recorded:
        record(tmp_path, module, keys, failed)
    return problems(tmp_path)


def test_returns_that_match_return_pass(tmp_path):
    assert runs(tmp_path, ("vz_callback", ["msg", "status", "error_code", "error_message", "changed"], True)) == []


def test_a_key_not_in_return_is_named_failed_run_or_not(tmp_path):
    assert runs(tmp_path, ("vz_callback", ["msg"], False), ("vz_sms_receive", ["msg", "devices"], True)) == [
        "vz_callback: returns 'msg', which RETURN does not document", "vz_sms_receive: returns 'devices', which RETURN does not document"]


def test_a_documented_key_no_run_returned_is_named(tmp_path):
    record(tmp_path, "vz_sms_send", SEND - {"devices_resolved"}, False)
    assert "vz_sms_send: RETURN documents 'devices_resolved', which no test run returned" in problems(tmp_path)
    assert "vz_callback: no run recorded" in problems(tmp_path)


def test_a_field_named_as_a_task_status_is_named(tmp_path, monkeypatch):
    real = returned_keys.documented
    monkeypatch.setattr(returned_keys, "documented", lambda module: real(module) | ({"skipped"} if module == "vz_sms_campaign" else set()))
    assert "vz_sms_campaign: RETURN documents 'skipped', which Ansible reads as the task's status" in runs(tmp_path)
