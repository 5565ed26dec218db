"""Transient answers (429 with Retry-After, 502/503/504) on every endpoint the modules call: they wait,
repeat and succeed, and POST /sms is accepted exactly as often as intended. A POST /sms that may have been
processed (503 without Retry-After) is not repeated but reported unconfirmed; a 429 that outlasts the
retries fails the batch as not sent, and a re-run sends it."""

from __future__ import annotations

import datetime

from harness import ACCOUNT, SMS_PATH, devices, receipts, statuses, task

M2M = "/api/m2m/v1"
LISTENER_PATH = "/_emulator/listener/reliability"


def fault(status, retry_after=None):
    return {"status": status} if retry_after is None else {"status": status, "retryAfter": retry_after}


# (endpoint, method, path pattern for the fault, exact path in the request log, faults in the order they hit).
# Faults without Retry-After only on reads, first, so the backoff is its shortest (0.5-1 s).
ENDPOINTS = [
    ("OAuth token", "POST", r"^/api/ts/v1/oauth2/token$", "/api/ts/v1/oauth2/token", [fault(429, 0), fault(503, 0)]),
    ("session login", "POST", r"^/api/m2m/v1/session/login$", M2M + "/session/login", [fault(429, 1), fault(503, 0)]),
    ("SMS history", "GET", r"/history$", M2M + "/sms/%s/history" % ACCOUNT, [fault(504), fault(429, 0), fault(503, 0)]),
    ("list callbacks", "GET", r"^/api/m2m/v1/callbacks/[^/]+$", M2M + "/callbacks/" + ACCOUNT, [fault(502), fault(429, 0), fault(503, 0)]),
    ("register callback", "POST", r"^/api/m2m/v1/callbacks/[^/]+$", M2M + "/callbacks/" + ACCOUNT, [fault(429, 0), fault(503, 0)]),
    ("start callbacks", "PUT", r"/startCallbacks$", M2M + "/sms/%s/startCallbacks" % ACCOUNT, [fault(429, 0), fault(503, 0)]),
    ("send SMS", "POST", r"^/api/m2m/v1/sms$", SMS_PATH, [fault(429, 1), fault(503, 1)]),
    ("device list", "POST", r"/devices/actions/list$", M2M + "/devices/actions/list", [fault(429, 0), fault(503, 0)]),
    ("deregister callback", "DELETE", r"/name/[^/]+$", M2M + "/callbacks/%s/name/SMSDeliveryConfirmation" % ACCOUNT, [fault(429, 0), fault(503, 0)]),
]


def _times(emulator, method, path):
    return [datetime.datetime.fromisoformat(entry["time"]) for entry in emulator.requests(method=method, path=path)]


def _gaps(times):
    return [round((later - earlier).total_seconds(), 3) for earlier, later in zip(times, times[1:])]


def test_transient_answers_on_every_endpoint_are_waited_out(emulator, ansible, figures):
    for _endpoint, method, pattern, _path, faults in ENDPOINTS:
        for spec in faults:
            emulator.fault(path=pattern, method=method, count=1, **spec)
    emulator.inject_mo_batch([{"accountName": ACCOUNT, "deviceId": dev, "message": "MO %d" % n} for n, dev in enumerate(devices(0, 3))])
    listener = emulator.url + LISTENER_PATH
    wave = devices(0, 30)

    play = ansible.run([
        task("vz_sms_receive", "receive", account_name=ACCOUNT),
        task("vz_callback", "register_listener", account_name=ACCOUNT, service_name="SMSDeliveryConfirmation", callback_url=listener),
        task("vz_sms_start_callbacks", "start", account_name=ACCOUNT, callback_url=listener),
        task("vz_sms_send", "send", account_name=ACCOUNT, devices=wave, sms_message="FW=2.4.1", batch_size=10),
        dict(task("vz_sms_send", "preview", account_name=ACCOUNT, group_name="all", sms_message="FW=2.4.1"), check_mode=True),
        task("vz_callback", "deregister", account_name=ACCOUNT, service_name="SMSDeliveryConfirmation", state="absent"),
    ])

    results = play.results
    for name, result in results.items():
        assert not result.get("failed"), "%s failed: %s" % (name, result.get("msg"))
    assert emulator.faults() == [], "every injected fault was met"
    observed = {}
    for endpoint, method, _pattern, path, faults in ENDPOINTS:
        seen = statuses(emulator, method, path)
        injected = [spec["status"] for spec in faults]
        assert seen[: len(injected)] == injected, endpoint
        assert seen[len(injected):] and all(status in (200, 202) for status in seen[len(injected):]), (endpoint, seen)
        observed[endpoint] = seen
    # Retry-After: 1 was honoured before each repeat; a 502/504 without it got the 0.5-1 s backoff.
    sms_gaps = _gaps(_times(emulator, "POST", SMS_PATH))
    login_gaps = _gaps(_times(emulator, "POST", M2M + "/session/login"))
    backoff_gaps = [_gaps(_times(emulator, "GET", M2M + "/sms/%s/history" % ACCOUNT))[0], _gaps(_times(emulator, "GET", M2M + "/callbacks/" + ACCOUNT))[0]]
    assert sms_gaps[0] >= 1.0 and sms_gaps[1] >= 1.0 and login_gaps[0] >= 1.0
    assert all(gap >= 0.5 for gap in backoff_gaps)
    # Exactly the intended sends: 3 batches, each device of the wave once, no other device.
    assert [message["deviceCount"] for message in emulator.sms(ACCOUNT)] == [10, 10, 10]
    assert results["send"]["devices_sent"] == 30 and len(results["send"]["request_ids"]) == 3
    assert receipts(emulator, wave) == [1] * 30
    assert sum(receipts(emulator, devices(30, 300))) == 0
    assert statuses(emulator, "POST", M2M + "/session/login") == [429, 503, 200], "one login"
    assert len(results["receive"]["messages"]) == 3
    assert results["preview"]["devices_resolved"] == 300

    figures.update(
        endpoints=observed,
        sms_accepted=len(emulator.sms(ACCOUNT)),
        sms_intended=3,
        faults_injected=sum(len(faults) for *_rest, faults in ENDPOINTS),
        retry_after_1s_gaps={"send SMS 429": sms_gaps[0], "send SMS 503": sms_gaps[1], "login 429": login_gaps[0]},
        backoff_gaps_without_retry_after=backoff_gaps,
        play_seconds=round(play.seconds, 1),
    )


def test_post_sms_503_without_retry_after_is_unconfirmed_not_repeated(emulator, ansible, figures):
    emulator.fault(path=r"^/api/m2m/v1/sms$", method="POST", count=1, status=503)
    wave = devices(0, 20)
    send = {"account_name": ACCOUNT, "devices": wave, "sms_message": "APN=iot.example", "idempotency_key": "wave-503", "batch_size": 10}

    play = ansible.run([
        task("vz_sms_send", "first", **send),
        task("vz_sms_send", "rerun", **send),
        task("vz_sms_send", "resend", resend_unconfirmed=True, **send),
    ])

    first, rerun, resend = (play.results[name] for name in ("first", "rerun", "resend"))
    # Not repeated: one POST, answered 503, so batch 1 is unconfirmed and batch 2 was not attempted.
    assert first["failed"]
    assert [batch["status"] for batch in first["batches"]] == ["unconfirmed"]
    assert first["devices_unconfirmed"] == wave[:10]
    assert "unconfirmed" in first["msg"] and "1 later batch(es) were not attempted" in first["msg"]
    # The re-run sends batch 2 only and warns about batch 1; resend_unconfirmed sends batch 1, once.
    assert not rerun.get("failed") and rerun["devices_sent"] == 10 and rerun["devices_unconfirmed"] == wave[:10]
    assert any("unconfirmed" in warning for warning in rerun["warnings"])
    assert not resend.get("failed") and resend["devices_sent"] == 10
    assert statuses(emulator, "POST", SMS_PATH) == [503, 200, 200]
    assert receipts(emulator, wave) == [1] * 20

    figures.update(post_sms_statuses=statuses(emulator, "POST", SMS_PATH), sms_accepted=len(emulator.sms(ACCOUNT)),
                   devices_unconfirmed_after_503=len(first["devices_unconfirmed"]), receipts=sorted(set(receipts(emulator, wave))),
                   play_seconds=round(play.seconds, 1))


def test_rate_limit_outlasting_the_retries_fails_the_batch_unsent(emulator, ansible, figures):
    emulator.fault(path=r"^/api/m2m/v1/sms$", method="POST", count=2, status=429, retryAfter=0)
    wave = devices(0, 5)
    send = {"account_name": ACCOUNT, "devices": wave, "sms_message": "PING", "idempotency_key": "wave-429", "retries": 1}

    play = ansible.run([task("vz_sms_send", "limited", **send), task("vz_sms_send", "rerun", **send)])

    limited, rerun = play.results["limited"], play.results["rerun"]
    assert limited["failed"] and [batch["status"] for batch in limited["batches"]] == ["failed"]
    assert "gave up after 2 attempts" in limited["msg"] and "nothing of it was sent" in limited["msg"]
    assert limited["devices_unconfirmed"] == []
    # Released from the ledger, so the re-run sends it, once.
    assert not rerun.get("failed") and rerun["devices_sent"] == 5 and rerun.get("warnings") is None
    assert statuses(emulator, "POST", SMS_PATH) == [429, 429, 200]
    assert receipts(emulator, wave) == [1] * 5

    figures.update(post_sms_statuses=statuses(emulator, "POST", SMS_PATH), sms_accepted=len(emulator.sms(ACCOUNT)), play_seconds=round(play.seconds, 1))
