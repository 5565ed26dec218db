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


def test_a_listener_held_by_the_portal_gets_a_message_that_says_so(fake, run_module):
    fake.script("POST", "/callbacks/", (400, {"errorCode": "UnifiedWebService.REQUEST_FAILED.UnexpectedError", "errorMessage": "Cannot register"}))
    result, failed = run_module(vz_callback.main, account_name=ACCOUNT, service_name="DeviceUsage", url="https://l.example/u")
    assert failed and "REQUEST_FAILED.UnexpectedError" in result["msg"] and result["error_code"] == "UnifiedWebService.REQUEST_FAILED.UnexpectedError"
    assert "registered through the ThingSpace portal or the SOAP API" in result["msg"] and "Remove it in the portal" in result["msg"]


PORT_WARNING = ("callback_url https://l.example:8443/u: ThingSpace accepts listener URLs only on the ports 80, 443, 9001-9006, "
                "50551-50559 and 28200-28220; it will refuse this one")


def test_a_port_thingspace_refuses_is_named(fake, run_module):
    result, failed = run_module(vz_callback.main, account_name=ACCOUNT, service_name="DeviceUsage", url="https://l.example:8443/u")
    assert failed and result["msg"].endswith(PORT_WARNING) and "portal" not in result["msg"]
    # A server that takes any port (the emulator can) registers it, with the warning.
    fake.script("POST", "/callbacks/", (200, {"accountName": ACCOUNT, "serviceName": "DeviceUsage"}))
    result, failed = run_module(vz_callback.main, account_name=ACCOUNT, service_name="DeviceUsage", url="https://l.example:8443/u")
    assert not failed and result["changed"] and result["warnings"] == [PORT_WARNING]
    for url in ("https://l.example/u", "http://l.example/u", "https://l.example:28220/u"):
        assert run_module(vz_callback.main, account_name=ACCOUNT, service_name="DeviceUsage", url=url)[0]["warnings"] == []


def clear_text_warning(url):
    return ("callback_url %s is plain http to a host that is not loopback and callback_password is set: ThingSpace sends the listener's "
            "username and password in clear in the body of every callback; use an https URL" % url)


def test_a_password_sent_in_clear_to_a_listener_elsewhere_is_warned_of(fake, run_module):
    for url in ("http://l.example/u", "HTTP://192.0.2.7:9001/u", "http://[2001:db8::7]:9001/u"):
        result, failed = run_module(vz_callback.main, account_name=ACCOUNT, service_name="DeviceUsage", url=url, callback_password="p")
        assert not failed and result["warnings"] == [clear_text_warning(url)], url
        result = run_module(vz_callback.main, check_mode=True, account_name=ACCOUNT, service_name="DeviceUsage", url=url, callback_password="p")[0]
        assert result["warnings"] == [clear_text_warning(url)], url  # check mode warns too
    # https, loopback, or no password: nothing secret crosses the network in clear.
    for url, password in (("https://l.example/u", "p"), ("http://localhost/u", "p"), ("http://127.0.0.2/u", "p"), ("http://[::1]/u", "p"),
                          ("http://l.example/u", None)):
        args = dict(account_name=ACCOUNT, service_name="DeviceUsage", url=url, callback_password=password)
        assert run_module(vz_callback.main, **args)[0]["warnings"] == [], url
