"""The ledger on PostgreSQL across controllers: ansible-playbook processes with their own HOME and state dir that
share only the database. Four of them send one message under one key to overlapping device lists; one of four is
killed mid-send while the others run with resend_unconfirmed; the database restarts between a claim and its
settle; the password stays out of every output at -vvv; playbooks/ledger_copy.yml moves an SQLite ledger. Every
device's receipts are counted on the emulator."""

from __future__ import annotations

import sys

import pytest
from harness import ACCOUNT, AS_MODULE, ROOT, SMS_PATH, Ansible, TokenGate, devices, kill_tree, ledger_rows, ledger_states, receipts, statuses, task, wait_until
from test_concurrency import send_window
from test_secrets import leaks

from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, service_scope

KEY = "wave-controllers"


@pytest.fixture
def controllers(tmp_path, emulator, database):
    """controllers(n) → n Ansible runners, each with its own workdir, HOME and state dir, one ledger database."""
    return lambda count: [Ansible(tmp_path / ("controller%d" % n), emulator.url, database) for n in range(count)]


@pytest.fixture
def on_postgresql(tmp_path, emulator, database):
    return Ansible(tmp_path, emulator.url, database)


def send(wave, **extra):
    return task("vz_sms_send", "send", account_name=ACCOUNT, devices=wave, sms_message="FW=6.0", idempotency_key=KEY, batch_size=10, **extra)


def claims(ansible):
    return {claim for _target, state, claim in ledger_rows(ansible) if state == "pending"}


def test_four_controllers_sharing_only_the_database_send_to_each_device_once(emulator, controllers, figures):
    runners = controllers(4)
    waves = [devices(0, 100), devices(50, 150), devices(100, 200), list(reversed(devices(0, 200)))]
    emulator.fault(path="^%s$" % SMS_PATH, method="POST", count=1000, latency=0.1)
    gates = [TokenGate(runner.state_dir) for runner in runners]
    try:
        # Each claims its first batch, then waits for its own token cache: all four are in the ledger before any sends.
        running = [runner.start([send(wave)]) for runner, wave in zip(runners, waves)]
        wait_until(lambda: len(claims(runners[0])) == 4 or any(run.process.poll() is not None for run in running), "four first claims", timeout=60)
    finally:
        for gate in gates:
            gate.open()
    plays = [run.finish() for run in running]

    results = [play.results["send"] for play in plays]
    for play, result in zip(plays, results):
        assert play.returncode == 0 and not result.get("failed"), play.describe()
    union = devices(0, 200)
    assert receipts(emulator, union) == [1] * 200, "a device got the message twice, or not at all"
    assert sum(receipts(emulator, devices(200, 300))) == 0
    assert sum(result["devices_sent"] for result in results) == 200 and all(result["devices_sent"] > 0 for result in results)
    assert sum(result["devices_skipped"] for result in results) == sum(len(wave) for wave in waves) - 200
    assert ledger_states(runners[0]) == {"sent": 200}
    windows = [send_window(emulator, result) for result in results]
    assert max(first for first, _last in windows) < min(last for _first, last in windows), "the four sends did not overlap in time"
    figures.update(controllers=4, devices=200, devices_requested=[len(wave) for wave in waves], devices_sent=[r["devices_sent"] for r in results],
                   devices_skipped=[r["devices_skipped"] for r in results], receipts=sorted(set(receipts(emulator, union))),
                   sms_accepted=len(emulator.sms(ACCOUNT)), logins=len(statuses(emulator, "POST", "/api/m2m/v1/session/login")),
                   seconds=[round(play.seconds, 1) for play in plays],
                   overlapping_send_seconds=round((min(last for _first, last in windows) - max(first for first, _last in windows)).total_seconds(), 2))


def live_states(ansible):
    """target → state under KEY, pending rows of live runs as in_flight, as a run of ``ansible`` sees them."""
    ledger = Ledger(ansible.ledger, read_only=True)
    try:
        return ledger.states(service_scope(ansible.api_url), KEY)
    finally:
        ledger.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.parametrize("run_as", ["controller", "module"])
def test_a_controller_killed_mid_send_keeps_its_claim_while_alive_then_resend_unconfirmed_sends_exactly_it(emulator, controllers, figures, run_as):
    victim, *others = controllers(4)
    with TokenGate(victim.state_dir):
        # The victim claims devices 0-9 (its first batch) and stops before its request, alive: in the controller's
        # worker, or in a module process.
        running = victim.start([dict(send(devices(0, 100)), **(AS_MODULE if run_as == "module" else {}))])
        wait_until(lambda: ledger_states(victim) == {"pending": 10}, "the victim's first claim", timeout=60)
        # Three controllers send overlapping lists meanwhile, taking over whatever is unconfirmed: never a live claim.
        waves = [devices(0, 60), list(reversed(devices(0, 90))), devices(0, 100)]
        plays = [runner.start([send(wave, resend_unconfirmed=True)]) for runner, wave in zip(others, waves)]
        plays = [play.finish() for play in plays]
        in_flight = sorted(target for target, state in live_states(victim).items() if state == "in_flight")
        killed, _output = kill_tree(running)
    assert any("AnsiballZ_vz_sms_send" in line for line in killed) == (run_as == "module")

    results = [play.results["send"] for play in plays]
    for play, result in zip(plays, results):
        assert play.returncode == 0 and not result.get("failed"), play.describe()
        assert any("being sent right now by another run" in warning for warning in result.get("warnings", [])), result.get("warnings")
    assert in_flight == ["iccid:%s" % device["id"] for device in devices(0, 10)]
    assert receipts(emulator, devices(0, 10)) == [0] * 10, "another controller took over a live claim"
    assert receipts(emulator, devices(10, 100)) == [1] * 90

    # Dead now: the server ended its session, so its claim is unconfirmed; a resend sends exactly its devices.
    wait_until(lambda: "in_flight" not in live_states(victim).values(), "the killed run's claim to be released", timeout=30)
    unconfirmed = sorted(target for target, state in live_states(victim).items() if state != "sent")
    resend = others[0].run([send(devices(0, 100), resend_unconfirmed=True)]).results["send"]
    assert unconfirmed == in_flight
    assert resend["devices_sent"] == 10 and [batch["devices"] for batch in resend["batches"] if batch["status"] == "sent"] == [10]
    assert receipts(emulator, devices(0, 100)) == [1] * 100 and sum(receipts(emulator, devices(100, 300))) == 0
    assert ledger_states(victim) == {"sent": 100}
    figures.update(in_flight_while_alive=len(in_flight), others_devices_sent=[r["devices_sent"] for r in results],
                   others_devices_skipped=[r["devices_skipped"] for r in results], receipts_of_the_claim_before_kill=[0],
                   unconfirmed_after_kill=len(unconfirmed), resend_devices_sent=resend["devices_sent"],
                   receipts=sorted(set(receipts(emulator, devices(0, 100)))), sms_accepted=len(emulator.sms(ACCOUNT)))


def test_a_database_restart_between_claim_and_settle_leaves_the_batch_unconfirmed_and_never_sent_again(emulator, on_postgresql, postgresql, figures):
    ansible = on_postgresql
    wave = devices(0, 30)
    with TokenGate(ansible.state_dir):
        running = ansible.start([send(wave)])
        wait_until(lambda: ledger_states(ansible) == {"pending": 10}, "batch 1 to be claimed", timeout=60)
        postgresql.restart()
    play = running.finish()
    first = play.results["send"]
    assert first["failed"] and [batch["status"] for batch in first["batches"]] == ["sent"]
    assert first["msg"].startswith("Batch 1 of 3 was sent (request id %s), but the ledger could not record it: The ledger database "
                                   % first["request_ids"][0])
    assert "It stays pending there, so a re-run reports it unconfirmed and does not send it again; 2 later batch(es) were not attempted" in first["msg"]
    assert ledger_states(ansible) == {"pending": 10}

    rerun = ansible.run([send(wave)]).results["send"]
    assert not rerun.get("failed") and rerun["devices_sent"] == 20 and rerun["devices_unconfirmed"] == wave[:10]
    assert receipts(emulator, wave) == [1] * 30 and len(emulator.sms(ACCOUNT)) == 3
    assert ledger_states(ansible) == {"sent": 20, "pending": 10}
    figures.update(first_run_batches=[batch["status"] for batch in first["batches"]], ledger_after_restart={"pending": 10},
                   rerun_devices_sent=rerun["devices_sent"], rerun_devices_unconfirmed=len(rerun["devices_unconfirmed"]),
                   receipts=sorted(set(receipts(emulator, wave))), sms_accepted=len(emulator.sms(ACCOUNT)))


def test_the_ledger_password_is_in_no_output_nor_in_the_ledger(emulator, ansible, postgresql, figures):
    role, password, wrong = "ledger_secret_test", "Ledger-Pa55-%s" % KEY[-4:], "Wr0ng-Ledger-Pa55"
    postgresql.execute("CREATE ROLE %s LOGIN PASSWORD '%s'" % (role, password))
    postgresql.execute("CREATE SCHEMA %s AUTHORIZATION %s" % (role, role))
    url = postgresql.url(user=role)
    log = ansible.workdir / "ansible.log"
    with_password = url.replace(role + "@", "%s:%s@" % (role, password))
    ledger = {"ledger_schema": role}
    play = ansible.start([
        task("vz_sms_send", "in_the_url", account_name=ACCOUNT, devices=devices(0, 5), sms_message="PING", ledger_url=with_password, **ledger),
        task("vz_sms_send", "as_option", account_name=ACCOUNT, devices=devices(5, 10), sms_message="PING", ledger_url=url,
             ledger_password="{{ ledger_password }}", **ledger),
        task("vz_sms_send", "wrong", account_name=ACCOUNT, devices=devices(10, 15), sms_message="PING", ledger_url=url,
             ledger_password="{{ wrong_password }}", **ledger),
        task("vz_sms_send", "unparsable", account_name=ACCOUNT, devices=devices(10, 15), sms_message="PING",
             ledger_url=url.replace(role + "@", "%s:%s%%zz@" % (role, password)), **ledger),
    ], variables={"ledger_password": password, "wrong_password": wrong}, args=("-vvv", "--diff"), env={"ANSIBLE_LOG_PATH": str(log)}).finish()
    assert play.returncode == 0, play.describe()
    results = play.results
    assert results["in_the_url"]["devices_sent"] == 5 and results["as_option"]["devices_sent"] == 5
    assert "password authentication failed" in results["wrong"]["msg"] and results["unparsable"]["msg"].startswith("ledger_url is not a URL libpq")
    assert receipts(emulator, devices(0, 15)) == [1] * 10 + [0] * 5

    outputs = {"stdout": play.stdout, "stderr": play.stderr}
    found = leaks(ansible.workdir, {password, wrong}, outputs)
    with postgresql.connect() as db:
        tables = {name: str(db.execute('SELECT * FROM "%s"."%s"' % (role, name)).fetchall()) for name in ("send_keys", "sends", "starts")}
    found += [("table " + name, value) for name, text in tables.items() for value in (password, wrong) if value in text]
    assert "ESTABLISH LOCAL CONNECTION" in play.stdout and log.stat().st_size > 0
    assert not found, "the ledger password was found: %r" % found
    figures.update(places_searched=[*outputs, "ansible.log", "results and other files", "ledger tables"], leaks=len(found),
                   failing_messages={name: results[name]["msg"] for name in ("wrong", "unparsable")})


def test_the_ledger_copy_playbook_moves_an_sqlite_ledger_into_postgresql(emulator, ansible, database, figures):
    wave = devices(0, 20)
    ansible.run([send(wave[:15])])  # the SQLite ledger of this controller
    env = {"THINGSPACE_LEDGER_URL": database.url, "THINGSPACE_LEDGER_PASSWORD": database.password, "THINGSPACE_LEDGER_SCHEMA": database.schema,
           "THINGSPACE_STATE_DIR": str(ansible.state_dir)}
    preview = ansible.run_playbook(ROOT / "playbooks" / "ledger_copy.yml", args=("--check",), env=env)
    copied = ansible.run_playbook(ROOT / "playbooks" / "ledger_copy.yml", env=env)
    again = ansible.run_playbook(ROOT / "playbooks" / "ledger_copy.yml", env=env)
    for play in (preview, copied, again):
        assert play.returncode == 0, play.describe()
    assert "Would copy 15 of 15 send record(s)" in preview.stdout and "Copied 15 of 15 send record(s)" in copied.stdout
    assert "Copied 0 of 15 send record(s)" in again.stdout and "changed=0" in again.stdout

    moved = Ansible(ansible.workdir / "awx-job", emulator.url, database)  # a fresh controller, only the database in common
    result = moved.run([send(wave)]).results["send"]
    assert result["devices_sent"] == 5 and result["devices_skipped"] == 15
    assert receipts(emulator, wave) == [1] * 20
    figures.update(copied=15, rerun_on_postgresql_devices_sent=result["devices_sent"], receipts=sorted(set(receipts(emulator, wave))))
