"""Fault injection on vendor endpoints: status (+ Retry-After, body), latency, dropped connections."""

import time

import pytest
import requests
from vendor_client import ACCOUNT

SMS = "^/api/m2m/v1/sms$"
ONE_DEVICE = {"deviceIds": [{"kind": "mdn", "id": "5550100001"}], "smsMessage": "hi"}


def test_status_with_retry_after_is_not_processed(emu, api):
    emu.admin.fault(path=SMS, method="POST", status=503, retryAfter=2)
    response = api.send(**ONE_DEVICE)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.json()["errorCode"] == "UnifiedWebService.REQUEST_FAILED.UnexpectedError"
    assert emu.admin.sms() == []
    assert api.send(**ONE_DEVICE).status_code == 200
    assert [r["status"] for r in emu.admin.requests(method="POST", path="/api/m2m/v1/sms")] == [503, 200]
    assert emu.admin.faults() == []


def test_given_body_and_count(emu, api):
    emu.admin.fault(path=SMS, status=429, body={"message": "slow down"}, count=2)
    assert [emu.admin.faults()[0][key] for key in ("remaining", "status")] == [2, 429]
    for _attempt in range(2):
        response = api.send(**ONE_DEVICE)
        assert (response.status_code, response.json()) == (429, {"message": "slow down"})
        assert "Retry-After" not in response.headers
    assert api.send(**ONE_DEVICE).status_code == 200


def test_method_filter(emu, api):
    emu.admin.fault(path="/callbacks/", method="GET", status=502)
    assert api.register("EnhancedConnectivityService", "http://127.0.0.1:9001/").status_code == 200
    assert api.call("GET", f"/callbacks/{ACCOUNT}").status_code == 502
    assert api.call("GET", f"/callbacks/{ACCOUNT}").status_code == 200


def test_token_endpoint_can_fail(emu):
    emu.admin.fault(path="/oauth2/token", status=504)
    assert emu.client().token().status_code == 504


def test_latency_then_handled(emu, api):
    emu.admin.fault(path="/callbacks/", latency=0.4)
    started = time.monotonic()
    response = api.call("GET", f"/callbacks/{ACCOUNT}")
    assert time.monotonic() - started >= 0.4
    assert (response.status_code, response.json()) == (200, [])


def test_drop_after_processing(emu, api):
    emu.admin.fault(path=SMS, drop=True)
    with pytest.raises(requests.ConnectionError):
        api.send(**ONE_DEVICE)
    [record] = emu.admin.sms()
    assert record["deviceCount"] == 1
    assert [r["status"] for r in emu.admin.requests(path="/api/m2m/v1/sms")] == [None]
    assert api.send(**ONE_DEVICE).status_code == 200


def test_status_after_processing(emu, api, listener):
    api.register("EnhancedConnectivityService", listener.url)
    emu.admin.fault(path=SMS, method="POST", status=500, process=True)
    response = api.send(**ONE_DEVICE)
    assert response.status_code == 500
    assert response.json()["errorCode"] == "UnifiedWebService.REQUEST_FAILED.UnexpectedError"
    [record] = emu.admin.sms()
    assert record["deviceCount"] == 1
    assert [item.body["requestId"] for item in listener.wait_count(2)] == [record["requestId"]] * 2
    assert [r["status"] for r in emu.admin.requests(path="/api/m2m/v1/sms")] == [500]


def test_admin_api_is_never_faulted(emu):
    emu.admin.fault(path=".", status=500, count=5)
    assert emu.admin.health() == {"status": "ok"}
    emu.admin.clear_faults()
    assert emu.admin.faults() == []


@pytest.mark.parametrize(
    "spec",
    [
        {"path": "(", "status": 500},
        {"path": "x", "status": 500, "drop": True},
        {"path": "x"},
        {"path": "x", "status": 700},
        {"path": "x", "count": 0, "status": 500},
        {"path": "x", "process": True},
        {"path": "x", "latency": 1, "process": True},
        {"path": "x", "drop": True, "process": True},
    ],
)
def test_bad_fault_specs_refused(emu, spec):
    with pytest.raises(RuntimeError, match="HTTP 400"):
        emu.admin.fault(**spec)
