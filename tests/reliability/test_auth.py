"""Tokens and logins. An expired session (between tasks, or in the middle of a multi-batch send) costs one
re-login and the call succeeds; a play and the plays after it share one login through the token cache. A
wrong password costs exactly one login attempt per task, fails with a clear error and is never retried
(five consecutive failures lock the user)."""

from __future__ import annotations

from harness import ACCOUNT, LOGIN_PATH, SMS_PATH, TOKEN_PATH, admin_task, devices, receipts, statuses, task

WRONG = "wrong-password"


def lockout(emulator, username="emulator-user"):
    """(consecutive failed logins, locked) of ``username`` on the emulator."""
    for entry in emulator.state().get("lockouts", []):
        if entry["username"] == username:
            return entry["failures"], entry["locked"]
    return 0, False


def test_expired_tokens_between_tasks_cost_one_new_token_each(emulator, ansible, figures):
    def send(name, start):
        return task("vz_sms_send", name, account_name=ACCOUNT, devices=devices(start, start + 5), sms_message="PING " + name)

    first = ansible.run([
        send("a", 0),
        send("b", 5),
        admin_task(emulator.url, "expire_session", "expire", {"tokens": "session"}),
        send("c", 10),
        send("d", 15),
        admin_task(emulator.url, "expire_access", "expire", {"tokens": "access"}),
        send("e", 20),
    ])
    logins_first_play = statuses(emulator, "POST", LOGIN_PATH)
    second = ansible.run([send("f", 25)])

    for play in (first, second):
        for name, result in play.results.items():
            assert not result.get("failed"), "%s: %s" % (name, result.get("msg"))
    # One login for the play; the expired session: one more; the expired bearer token: one new OAuth token.
    assert logins_first_play == [200, 200]
    assert statuses(emulator, "POST", LOGIN_PATH) == [200, 200], "the next play reuses the cached tokens"
    assert statuses(emulator, "POST", TOKEN_PATH) == [200, 200]
    # Each rejected send (400 session expired, 401 bearer expired) was repeated once, after the new token.
    assert statuses(emulator, "POST", SMS_PATH) == [200, 200, 400, 200, 200, 401, 200, 200]
    assert receipts(emulator, devices(0, 30)) == [1] * 30

    figures.update(tasks=6, plays=2, logins=len(statuses(emulator, "POST", LOGIN_PATH)), oauth_tokens=len(statuses(emulator, "POST", TOKEN_PATH)),
                   post_sms_statuses=statuses(emulator, "POST", SMS_PATH), sms_accepted=len(emulator.sms(ACCOUNT)), sms_intended=6,
                   play_seconds=[round(first.seconds, 1), round(second.seconds, 1)])


def test_both_tokens_rejected_between_tasks_cost_one_new_token_each(emulator, ansible, figures):
    wave = devices(0, 10)
    play = ansible.run([
        task("vz_sms_send", "before", account_name=ACCOUNT, devices=wave[:5], sms_message="PING"),
        admin_task(emulator.url, "expire_all", "expire", {"tokens": "all"}),
        task("vz_sms_send", "after", account_name=ACCOUNT, devices=wave[5:], sms_message="PING"),
    ])

    after = play.results["after"]
    figures.update(post_sms_statuses=statuses(emulator, "POST", SMS_PATH), logins=len(statuses(emulator, "POST", LOGIN_PATH)),
                   oauth_tokens=len(statuses(emulator, "POST", TOKEN_PATH)), error=after.get("msg") if after.get("failed") else None)
    assert not after.get("failed"), after.get("msg")
    assert statuses(emulator, "POST", TOKEN_PATH) == [200, 200] and statuses(emulator, "POST", LOGIN_PATH) == [200, 200]
    assert receipts(emulator, wave) == [1] * 10


def test_session_expiring_in_the_middle_of_a_send_costs_one_login(emulator, ansible, figures):
    # The session idles out while batch 2 is held: batch 2 is answered "expired", then repeated after one login.
    emulator.config(sessionIdleTtl=2)
    emulator.fault(path="^%s$" % SMS_PATH, method="POST", count=1, latency=0)
    emulator.fault(path="^%s$" % SMS_PATH, method="POST", count=1, latency=3)
    wave = devices(0, 30)

    play = ansible.run([task("vz_sms_send", "send", account_name=ACCOUNT, devices=wave, sms_message="CFG=9", batch_size=10)])

    send = play.results["send"]
    assert not send.get("failed") and send["devices_sent"] == 30 and len(send["request_ids"]) == 3
    assert statuses(emulator, "POST", LOGIN_PATH) == [200, 200]
    assert statuses(emulator, "POST", TOKEN_PATH) == [200]
    assert statuses(emulator, "POST", SMS_PATH) == [200, 400, 200, 200]
    assert receipts(emulator, wave) == [1] * 30

    figures.update(logins=len(statuses(emulator, "POST", LOGIN_PATH)), oauth_tokens=len(statuses(emulator, "POST", TOKEN_PATH)),
                   post_sms_statuses=statuses(emulator, "POST", SMS_PATH), sms_accepted=len(emulator.sms(ACCOUNT)), sms_intended=3,
                   receipts=sorted(set(receipts(emulator, wave))), play_seconds=round(play.seconds, 1))


def test_wrong_password_is_tried_once_and_never_retried(emulator, ansible, figures):
    wave = devices(0, 3)
    send = {"account_name": ACCOUNT, "devices": wave, "sms_message": "PING", "idempotency_key": "wave-login"}
    listener = emulator.url + "/_emulator/listener/reliability"

    refused = ansible.run([
        task("vz_sms_send", "send", password=WRONG, **send),
        task("vz_callback", "register_listener", password=WRONG, account_name=ACCOUNT, service_name="SMSDeliveryConfirmation", callback_url=listener),
        task("vz_sms_receive", "receive", password=WRONG, account_name=ACCOUNT),
    ])

    for name in ("send", "register_listener", "receive"):
        assert refused.results[name]["failed"], name
    assert "Failed to log in to ThingSpace as 'emulator-user': HTTP 400" in refused.results["send"]["msg"]
    assert "not retried, because five consecutive failed logins lock the account" in refused.results["send"]["msg"]
    for name in ("register_listener", "receive"):
        assert "Not logging in as 'emulator-user': ThingSpace refused this password" in refused.results[name]["msg"], name
    attempts = statuses(emulator, "POST", LOGIN_PATH)
    assert attempts == [400], "one attempt: the later tasks know the password was refused"
    failures, locked = lockout(emulator)
    assert (failures, locked) == (1, False)
    assert emulator.requests(method="POST", path=SMS_PATH) == []
    assert refused.results["send"]["batches"][0]["status"] == "failed"

    # The right password works at once and the refused send was not recorded as sent: the re-run sends it.
    fixed = ansible.run([task("vz_sms_send", "send", **send)]).results["send"]
    assert not fixed.get("failed") and fixed["devices_sent"] == 3
    assert receipts(emulator, wave) == [1] * 3
    assert lockout(emulator) == (0, False)

    figures.update(tasks_with_wrong_password=3, login_attempts=len(attempts), failures_before_lockout=failures, locked=locked,
                   post_sms_while_refused=0, error=refused.results["send"]["msg"], later_error=refused.results["receive"]["msg"])


def test_without_token_cache_each_task_tries_once(emulator, ansible, figures):
    refused = ansible.run([
        task("vz_sms_receive", "receive%d" % n, password=WRONG, token_cache=False, account_name=ACCOUNT) for n in range(3)
    ])
    assert all(refused.results["receive%d" % n]["failed"] for n in range(3))
    attempts = statuses(emulator, "POST", LOGIN_PATH)
    assert attempts == [400, 400, 400], "exactly one attempt per task, never a retry"
    assert lockout(emulator) == (3, False)
    figures.update(tasks=3, login_attempts=len(attempts))


def test_wrong_password_on_five_hosts_does_not_lock_the_user(emulator, ansible, figures):
    play = ansible.run([task("vz_sms_receive", "receive", password=WRONG, account_name=ACCOUNT)], hosts=["gw1", "gw2", "gw3", "gw4", "gw5"])

    attempts = statuses(emulator, "POST", LOGIN_PATH)
    failures, locked = lockout(emulator)
    figures.update(hosts=5, login_attempts=len(attempts), failures=failures, locked=locked)
    assert all(results["receive"]["failed"] for results in play.by_host.values())
    assert not locked, "one task on 5 hosts made %d login attempts and locked the user" % len(attempts)


def test_a_changed_password_is_not_hidden_by_the_cached_tokens(emulator, ansible, figures):
    """The tokens cached by the right password do not let a wrong one pass: it logs in, is refused once, and the
    next task does not try it again."""
    receive = {"account_name": ACCOUNT}
    right = ansible.run([task("vz_sms_receive", "receive", **receive)]).results["receive"]
    assert not right.get("failed"), right.get("msg")
    assert statuses(emulator, "POST", LOGIN_PATH) == [200]

    changed = ansible.run([task("vz_sms_receive", "receive%d" % n, password=WRONG, **receive) for n in range(2)]).results
    assert "Failed to log in to ThingSpace as 'emulator-user': HTTP 400" in changed["receive0"]["msg"]
    assert "Not logging in as 'emulator-user': ThingSpace refused this password" in changed["receive1"]["msg"]
    assert statuses(emulator, "POST", LOGIN_PATH) == [200, 400], "exactly one attempt with the wrong password"
    assert lockout(emulator) == (1, False)

    again = ansible.run([task("vz_sms_receive", "receive", **receive)]).results["receive"]
    assert not again.get("failed") and statuses(emulator, "POST", LOGIN_PATH) == [200, 400], "the right password keeps its tokens"
    figures.update(login_statuses=statuses(emulator, "POST", LOGIN_PATH), error=changed["receive0"]["msg"])
