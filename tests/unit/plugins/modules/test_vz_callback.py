"""vz_callback end to end against the fake API, bad input included (it fails before any request)."""

from __future__ import annotations

from ansible_collections.thingspace.m2m.plugins.modules import vz_callback

from fake_api import ACCOUNT


def test_callback_present_absent_with_diff(fake, run_module):
    url = "https://l.example:9002/d"
    args = dict(account_name=ACCOUNT, service_name="SMSDeliveryConfirmation", url=url, callback_username="u", callback_password="p")
    result = run_module(vz_callback.main, **args)[0]
    assert result["changed"] and result["diff"] == {"before": {}, "after": {"url": url, "username": "u", "password": "********"}}
    assert result["listener"] == {"service_name": "SMSDeliveryConfirmation", "url": url, "username": "u"}
    assert fake.listeners["SMSDeliveryConfirmation"] == {"serviceName": "SMSDeliveryConfirmation", "url": url, "username": "u", "password": "p"}
    assert not run_module(vz_callback.main, **args)[0]["changed"]
    assert run_module(vz_callback.main, **dict(args, callback_password="p2"))[0]["changed"]
    result = run_module(vz_callback.main, check_mode=True, account_name=ACCOUNT, service_name="SMSDeliveryConfirmation", state="absent")[0]
    assert result["changed"] and fake.listeners
    result = run_module(vz_callback.main, account_name=ACCOUNT, service_name="SMSDeliveryConfirmation", state="absent")[0]
    assert result["changed"] and not fake.listeners and result["listener"] == {}
    assert not run_module(vz_callback.main, account_name=ACCOUNT, service_name="SMSDeliveryConfirmation", state="absent")[0]["changed"]


def test_callback_bad_input(fake, run_module):
    result, failed = run_module(vz_callback.main, account_name=ACCOUNT, service_name="SmsThings", url="https://l.example/x")
    assert failed and "value of service_name must be one of" in result["msg"]
    result, failed = run_module(vz_callback.main, account_name=ACCOUNT, service_name="DeviceUsage")
    assert failed and "state is present but all of the following are missing: callback_url" in result["msg"]
    assert fake.calls == []
