"""Secrets stay out of every output. Plays run with -vvv --diff and a log file: one that works (logins,
listener registrations with passwords, a send, a read), one against a failing API (500, a dropped
connection, 503s, wrong password, wrong client secret, rejected pre-issued tokens) and playbooks/demo.yml.
No password, client secret, listener password, access or session token appears in stdout, stderr, the
registered results, the Ansible log or any other file the runs left, except the token cache, which is 0600
in a 0700 directory like the ledger, even under umask 000."""

from __future__ import annotations

import base64
import json
import stat
import sys
import uuid
from pathlib import Path

from harness import ACCOUNT, CREDENTIALS, ROOT, devices, secret_values, task

from thingspace_emulator.testing import running_emulator

LISTENER_SECRETS = ("hook-secret-1-9c4e", "hook-secret-2-51d0", "hook-secret-3-e7a2")
WRONG_PASSWORD = "Wr0ng-Pa55-7f3a"
WRONG_CLIENT_SECRET = "wr0ng-client-secret-b81c"


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def leaks(workdir, values, outputs):
    """(where, value) for every secret value found in ``outputs`` (name → text) or in a file under ``workdir``
    other than the playbooks and their extra-vars files (the inputs) and the token cache (tokens by design)."""
    found = []
    for name, text in outputs.items():
        found.extend((name, value) for value in values if value in text)
    for path in sorted(Path(workdir).rglob("*")):
        if path.is_file() and path.suffix != ".yml" and path.name != "tokens.json":
            data = path.read_bytes()
            found.extend((str(path.relative_to(workdir)), value) for value in values if value.encode() in data)
    return found


def cached_tokens(state_dir):
    """The access and session token of the (only) token cache entry."""
    entries = json.loads((state_dir / "tokens.json").read_text())["entries"]
    entry = next(iter(entries.values()))
    return {"access_token": entry["access_token"], "session_token": entry["session_token"]}


def test_no_secret_in_any_output_and_state_files_are_private(emulator, ansible, figures):
    log = ansible.workdir / "ansible.log"
    env = {"ANSIBLE_LOG_PATH": str(log)}
    args = ("-vvv", "--diff")
    listener = emulator.url + "/_emulator/listener/reliability"
    own_ledger = ansible.workdir / "ledgers" / "wave" / "ledger.sqlite3"

    # Secrets reach the play as variables (an extra-vars file here, a vault in real life), as the docs advise.
    secrets = {"secret_listener_%d" % n: value for n, value in enumerate(LISTENER_SECRETS)}
    working = ansible.run([
        task("vz_callback", "register_listener", account_name=ACCOUNT, service_name="SMSDeliveryConfirmation", callback_url=listener,
             callback_username="hook", callback_password="{{ secret_listener_0 }}"),
        task("vz_sms_start_callbacks", "start", account_name=ACCOUNT, callback_url=listener, callback_username="hook",
             callback_password="{{ secret_listener_1 }}"),
        task("vz_callback", "change_password", account_name=ACCOUNT, service_name="SMSDeliveryConfirmation", callback_url=listener,
             callback_username="hook", callback_password="{{ secret_listener_2 }}"),
        task("vz_sms_send", "send", account_name=ACCOUNT, devices=devices(0, 5), sms_message="PING"),
        task("vz_sms_send", "send_own_ledger", account_name=ACCOUNT, devices=devices(5, 10), sms_message="PING", ledger_path=str(own_ledger)),
        task("vz_sms_receive", "receive", account_name=ACCOUNT),
    ], variables=secrets, args=args, env=env, umask=0)
    for name, result in working.results.items():
        assert not result.get("failed"), "%s: %s" % (name, result.get("msg"))
    assert working.results["change_password"]["diff"]["after"]["password"] == "******** (changed)"
    first_tokens = secret_values(emulator, ansible.state_dir)

    # State files: private whatever the umask, token cache included (it legitimately holds the tokens);
    # directories (the ledger's claim locks) 0700.
    state_files = {path.name: oct(mode(path)) for path in ansible.state_dir.iterdir()}
    assert mode(ansible.state_dir) == 0o700
    assert state_files and all(
        value == oct(0o700 if (ansible.state_dir / name).is_dir() else 0o600) for name, value in state_files.items()
    ), state_files
    assert {"tokens.json", "ledger.sqlite3"} <= set(state_files)
    assert mode(own_ledger.parent) == 0o700 and mode(own_ledger) == 0o600
    cache_text = (ansible.state_dir / "tokens.json").read_text()
    assert first_tokens and all(value in cache_text for value in first_tokens), "the searched token values are the real ones"

    pre_issued_access = cached_tokens(ansible.state_dir)["access_token"]
    fake_session = str(uuid.uuid4())
    emulator.expire("session")  # the failing play logs in again: one more session token to look for
    emulator.fault(path=r"^/api/m2m/v1/sms$", method="POST", count=1, status=500)
    emulator.fault(path=r"^/api/m2m/v1/sms$", method="POST", count=1, drop=True)
    emulator.fault(path=r"/history$", method="GET", count=2, status=503)
    secrets.update(secret_wrong_password=WRONG_PASSWORD, secret_wrong_client_secret=WRONG_CLIENT_SECRET, secret_fake_session=fake_session,
                   secret_access_token=pre_issued_access)
    failing = ansible.run([
        task("vz_sms_send", "server_error", account_name=ACCOUNT, devices=devices(10, 15), sms_message="PING"),
        task("vz_sms_send", "dropped", account_name=ACCOUNT, devices=devices(15, 20), sms_message="PING"),
        task("vz_sms_receive", "unavailable", account_name=ACCOUNT, retries=1),
        task("vz_sms_receive", "wrong_password", account_name=ACCOUNT, password="{{ secret_wrong_password }}", token_cache=False),
        task("vz_sms_receive", "wrong_client_secret", account_name=ACCOUNT, client_secret="{{ secret_wrong_client_secret }}", token_cache=False),
        task("vz_sms_receive", "rejected_pre_issued", account_name=ACCOUNT, access_token="{{ secret_access_token }}", session_token="{{ secret_fake_session }}",
             client_id="{{ omit }}", client_secret="{{ omit }}", username="{{ omit }}", password="{{ omit }}"),
        task("vz_callback", "unknown_account", account_name="0000000000-99999", service_name="SMSDeliveryConfirmation", callback_url=listener,
             callback_password="{{ secret_listener_0 }}"),
    ], variables=secrets, args=args, env=env)
    for name, result in failing.results.items():
        assert result.get("failed"), "%s should have failed: %s" % (name, result.get("msg"))
    assert "no answer from" in failing.results["dropped"]["msg"]
    assert "The session token was rejected or expired and no username/password is set" in failing.results["rejected_pre_issued"]["msg"]

    tokens = first_tokens | secret_values(emulator, ansible.state_dir)
    values = set(tokens)
    values.update(CREDENTIALS[name] for name in ("password", "client_secret"))
    values.update((*LISTENER_SECRETS, WRONG_PASSWORD, WRONG_CLIENT_SECRET, fake_session))
    values.add(base64.b64encode(("%s:%s" % (CREDENTIALS["client_id"], CREDENTIALS["client_secret"])).encode()).decode())
    registered = {item["serviceName"]: item.get("password") for item in emulator.state()["registrations"]}
    assert registered == {"SMSDeliveryConfirmation": LISTENER_SECRETS[2], "EnhancedConnectivityService": LISTENER_SECRETS[1]}, "the secrets were used"
    plays = {"working": working, "failing": failing}
    outputs = {"%s %s" % (label, stream): getattr(play, stream) for label, play in plays.items() for stream in ("stdout", "stderr")}
    # -vvv shows the connection (ansible-core 2.19 and 2.21) and, on 2.19, each result's invocation.
    assert all("ESTABLISH LOCAL CONNECTION" in outputs["%s stdout" % label] for label in plays), "the runs were verbose"
    assert log.stat().st_size > 0

    found = leaks(ansible.workdir, values, outputs)
    assert not found, "secret values found: %r" % found

    figures.update(
        secret_values_searched=len(values), tokens_searched=len(tokens), places_searched=[*sorted(outputs), "ansible.log", "results and other files"],
        bytes_searched=sum(len(text) for text in outputs.values()) + log.stat().st_size, leaks=len(found),
        state_dir_mode=oct(mode(ansible.state_dir)), state_files=state_files, own_ledger_modes=[oct(mode(own_ledger.parent)), oct(mode(own_ledger))],
        umask="000", failing_messages={name: result["msg"] for name, result in failing.results.items()},
    )


def test_no_secret_in_the_demo_playbook_output(ansible, figures):
    """playbooks/demo.yml (roles, loops, check mode, callbacks to the rulebook, the delivery wait) with -vvv --diff and
    the credentials in the environment, as `make demo` runs it: not in its output, the rulebook's, or the ledger the
    callbacks source wrote."""
    state_dir = ansible.workdir / "demo-state"
    log = ansible.workdir / "demo.log"
    rulebook_log = ansible.workdir / "rulebook.log"
    listener_password = "demo-listener-password-3e9a"
    with running_emulator("--quiet") as demo_emulator:
        env = {"THINGSPACE_" + name.upper(): value for name, value in CREDENTIALS.items()}
        env.update(THINGSPACE_API_URL=demo_emulator.url, THINGSPACE_STATE_DIR=str(state_dir), ANSIBLE_LOG_PATH=str(log),
                   THINGSPACE_CALLBACK_PASSWORD=listener_password)
        demo = ansible.run_playbook(ROOT / "playbooks" / "demo.yml", args=("-vvv", "--diff"), env=env,
                                    wrapper=(sys.executable, str(ROOT / "tests" / "utils" / "with_rulebook.py"), "--log", str(rulebook_log), "--"))
        tokens = secret_values(demo_emulator, state_dir)

    assert demo.returncode == 0, demo.describe()
    assert tokens and log.stat().st_size > 0 and "Delivery: request" in rulebook_log.read_text()
    assert "10 device(s): 10 Delivered" in demo.stdout and "@state_suspend:" in demo.stdout
    assert "2 device(s) not active were left out (skip_inactive: true; devices_inactive)" in demo.stdout
    # The campaign: a fifth of the fleet answers Undelivered, the criterion aborts it in wave 2, a later step sends nothing.
    assert "Abort criterion {failure: undelivered, threshold: 15%, min_devices: 3} met at device iccid" in demo.stdout
    assert "Campaign demo-west-wave-campaign: aborted, wave 2 of 3; sent to 0 device(s) in this run; 5 of 12 devices sent" in demo.stdout
    assert "1 skipped (not active); gate failed" in demo.stdout
    assert "POST /sms requests of the step: 0" in demo.stdout
    # Nothing a user of `make demo` would have to ignore (-vvv shows more than make demo does).
    warnings = [line for line in (demo.stdout + demo.stderr).splitlines() if "[WARNING]" in line or "DEPRECATION" in line]
    assert not warnings, "the demo warns:\n%s" % "\n".join(warnings)
    values = tokens | {CREDENTIALS["password"], CREDENTIALS["client_secret"], listener_password}
    found = leaks(ansible.workdir, values, {"demo stdout": demo.stdout, "demo stderr": demo.stderr})
    assert not found, "secret values found: %r" % found

    figures.update(secret_values_searched=len(values), bytes_searched=len(demo.stdout) + len(demo.stderr) + log.stat().st_size,
                   leaks=len(found), play_seconds=round(demo.seconds, 1))
