"""vz_sms_start_callbacks end to end against the fake API."""

from __future__ import annotations

from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_start_callbacks

from fake_api import ACCOUNT


def test_start_callbacks_registers_then_is_idempotent(fake, run_module):
    args = dict(account_name=ACCOUNT, callback_url="https://l.example:9001/sms", callback_username="u", callback_password="p")
    result = run_module(vz_sms_start_callbacks.main, check_mode=True, **args)[0]
    assert result["changed"] and result["registration_changed"] and not result["started"]
    assert fake.count("POST", "callbacks") == 0 and fake.count("PUT", "startCallbacks") == 0
    result = run_module(vz_sms_start_callbacks.main, **args)[0]
    assert result["changed"] and result["registration_changed"] and result["first_start"] and result["started"]
    assert result["diff"]["after"]["password"] == "********"
    result = run_module(vz_sms_start_callbacks.main, check_mode=True, **args)[0]
    assert not result["changed"]
    result = run_module(vz_sms_start_callbacks.main, **args)[0]
    assert not result["changed"] and result["started"] and fake.count("PUT", "startCallbacks") == 2
    assert fake.count("POST", "callbacks") == 1
    result = run_module(vz_sms_start_callbacks.main, **dict(args, callback_url="https://l.example:9002/sms"))[0]
    assert result["changed"] and result["registration_changed"] and not result["first_start"]
