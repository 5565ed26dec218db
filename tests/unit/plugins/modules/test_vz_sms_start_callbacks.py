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


def test_a_password_sent_in_clear_to_a_listener_elsewhere_is_warned_of(fake, run_module):
    url = "http://l.example:9001/sms"
    result = run_module(vz_sms_start_callbacks.main, account_name=ACCOUNT, callback_url=url, callback_username="u", callback_password="p")[0]
    assert result["warnings"] == [
        "callback_url %s is plain http to a host that is not loopback and callback_password is set: ThingSpace sends the listener's "
        "username and password in clear in the body of every callback; use an https URL" % url]
    assert run_module(vz_sms_start_callbacks.main, account_name=ACCOUNT, callback_url="http://127.0.0.1:9001/sms", callback_password="p")[0]["warnings"] == []
