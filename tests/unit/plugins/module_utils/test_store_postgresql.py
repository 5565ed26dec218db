"""The PostgreSQL store (module_utils/_store_postgresql.py) through the modules, against the session's real server:
the options and their environment variables, where the password comes from and that it is never shown, and
every way of not reaching the database, each failing before any request."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils import _store_postgresql
from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database
from ansible_collections.thingspace.m2m.plugins.module_utils.client import ThingSpaceClient
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger, service_scope
from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_send, vz_sms_start_callbacks

from fake_api import ACCOUNT, API

DEVICES = [{"kind": "mdn", "id": "555000%04d" % n} for n in range(1, 6)]
SCOPE, KEY = "http://127.0.0.1:9", "wave1"


def sms_bodies(fake):
    return [body for method, path, body in fake.calls if method == "POST" and path == "/api/m2m/v1/sms"]


@pytest.fixture
def database(postgresql):
    """A fresh ledger schema on the session's server, as the modules' options."""
    return {"ledger_url": postgresql.url(), "ledger_password": postgresql.password, "ledger_schema": postgresql.new_schema()}


@pytest.fixture
def role(postgresql):
    """role(privileges...) → (name, password): a new login role; ``"schema"`` gives it a schema of its own."""
    made = []

    def create(*privileges):
        name = "r_%d_%d" % (len(made), time.monotonic_ns())
        password = "pw-%s" % name
        postgresql.execute("CREATE ROLE %s LOGIN PASSWORD '%s'" % (name, password))
        if "schema" in privileges:
            postgresql.execute("CREATE SCHEMA %s AUTHORIZATION %s" % (name, name))
        made.append(name)
        return name, password

    return create


def test_a_send_and_its_rerun_on_postgresql(fake, run_module, database, postgresql):
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", **database)
    assert not failed and result["devices_sent"] == 5
    result, failed = run_module(vz_sms_send.main, check_mode=True, devices=[*DEVICES, {"kind": "mdn", "id": "5550000099"}], sms_message="hello",
                                **database)
    assert not failed and result["devices_sent"] == 1 and result["devices_skipped"] == 5
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", **database)
    assert not failed and not result["changed"] and result["devices_skipped"] == 5 and len(sms_bodies(fake)) == 1
    rows = postgresql.execute("SELECT k.scope, s.target, s.state FROM %s.sends s JOIN %s.send_keys k ON k.id = s.key_id ORDER BY 2"
                              % (database["ledger_schema"], database["ledger_schema"]))
    assert rows == [(service_scope(API), "mdn:%s" % d["id"], "sent") for d in DEVICES]


def test_the_options_come_from_the_environment(fake, run_module, database, monkeypatch, state_dir):
    for option, value in database.items():
        monkeypatch.setenv("THINGSPACE_" + option.upper(), value)
    args = dict(account_name=ACCOUNT, callback_url="https://l.example:9001/sms", callback_username="u", callback_password="p")
    result, failed = run_module(vz_sms_start_callbacks.main, **args)
    assert not failed and result["first_start"]
    assert not run_module(vz_sms_start_callbacks.main, **args)[0]["first_start"]
    assert not state_dir.exists() or not (state_dir / "ledger.sqlite3").exists(), "the SQLite ledger was not used"


@pytest.mark.parametrize("source", ["url", "option", "PGPASSWORD", "PGPASSFILE"])
def test_the_password_comes_from_the_url_the_option_or_libpq(fake, run_module, postgresql, role, monkeypatch, tmp_path, source):
    name, password = role("schema")
    url = postgresql.url(user=name)
    args = {"ledger_url": url, "ledger_schema": name}
    if source == "url":
        args["ledger_url"] = url.replace(name + "@", "%s:%s@" % (name, password))
    elif source == "option":
        args["ledger_password"] = password
    elif source == "PGPASSWORD":
        monkeypatch.setenv("PGPASSWORD", password)
    else:
        passfile = tmp_path / "pgpass"
        passfile.write_text("127.0.0.1:%d:postgres:%s:%s\n" % (postgresql.port, name, password))
        passfile.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(passfile))
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", **args)
    assert not failed and result["devices_sent"] == 5, result["msg"]


def _where(postgresql, user, schema):
    return "%s@127.0.0.1:%d/postgres (schema %s)" % (user, postgresql.port, schema)


def test_a_wrong_password_fails_before_any_request_and_is_never_shown(fake, run_module, postgresql, role):
    name, _password = role("schema")
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", ledger_url=postgresql.url(user=name),
                                ledger_password="Wr0ng-Secret", ledger_schema=name)
    assert failed and result["msg"] == ('Cannot connect to the ledger database %s: connection failed: connection to server at "127.0.0.1", port %d '
                                        'failed: FATAL: password authentication failed for user "%s"; nothing was sent'
                                        % (_where(postgresql, name, name), postgresql.port, name))
    assert "Wr0ng-Secret" not in repr(result) and fake.calls == []


def test_a_closed_port_fails_before_any_request_naming_the_host(fake, run_module):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", ledger_url="postgresql://ops@127.0.0.1:%d/ledger" % port)
    assert failed and result["msg"].startswith('Cannot connect to the ledger database ops@127.0.0.1:%d/ledger (schema thingspace): connection failed: '
                                               'connection to server at "127.0.0.1", port %d failed: Connection refused' % (port, port))
    assert result["msg"].endswith("; nothing was sent") and fake.calls == []


@contextlib.contextmanager
def _silent_server():
    """A port that accepts connections and never answers: a database host that does not respond."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_database_that_does_not_answer_fails_the_task_after_the_connect_timeout(fake, run_module):
    with _silent_server() as port:
        started = time.monotonic()
        result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello",
                                    ledger_url="postgresql://ops@127.0.0.1:%d/ledger?connect_timeout=2" % port)
        seconds = time.monotonic() - started
    assert failed and result["msg"].startswith("Cannot connect to the ledger database ops@127.0.0.1:%d/ledger (schema thingspace): " % port)
    assert "timeout expired" in result["msg"] and fake.calls == []
    assert 1.5 < seconds < 10


def test_the_connect_timeout_is_10_seconds_and_the_session_is_named_unless_the_url_says_otherwise(postgresql):
    schema = postgresql.new_schema()
    for url, expected in ((postgresql.url(), {"connect_timeout": "10", "application_name": "thingspace.m2m"}),
                          (postgresql.url(connect_timeout=3, application_name="wave3"), {"connect_timeout": "3", "application_name": "wave3"})):
        ledger = Ledger(Database(url, postgresql.password, schema))
        parameters = ledger._store._db.info.get_parameters()
        assert {name: parameters.get(name) for name in expected} == expected
        ledger.close()


def test_a_url_libpq_refuses_fails_before_any_request_without_showing_the_password(fake, run_module):
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", ledger_url="postgresql://ops:p%zzsecret@127.0.0.1:1/ledger")
    assert failed and result["msg"] == 'ledger_url is not a URL libpq accepts: invalid percent-encoded token: "********"'
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", ledger_url="postgresql://127.0.0.1:1/ledger?sslmod=require")
    assert failed and result["msg"] == 'ledger_url is not a URL libpq accepts: invalid URI query parameter: "sslmod"'
    assert fake.calls == []


def test_a_role_that_may_not_create_the_schema_is_told_what_to_ask_for(fake, run_module, postgresql, role):
    name, password = role()
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", ledger_url=postgresql.url(user=name),
                                ledger_password=password, ledger_schema="ops_ledger")
    assert failed and result["msg"] == ("The ledger database %s: permission denied for database postgres; the role needs the schema and its tables, "
                                        "or the right to create them: see the guide \"Keep the ledger in PostgreSQL\" for the SQL an "
                                        "administrator runs once" % _where(postgresql, name, "ops_ledger"))
    assert fake.calls == []


def test_a_role_without_rights_on_an_existing_ledger_is_told_what_to_ask_for(fake, run_module, postgresql, role, database):
    assert not run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", **database)[1]
    name, password = role()
    for check_mode in (True, False):
        result, failed = run_module(vz_sms_send.main, check_mode=check_mode, devices=DEVICES, sms_message="hello", ledger_url=postgresql.url(user=name),
                                    ledger_password=password, ledger_schema=database["ledger_schema"])
        assert failed and result["msg"].startswith("The ledger database %s: permission denied for schema %s; the role needs the schema"
                                                   % (_where(postgresql, name, database["ledger_schema"]), database["ledger_schema"]))
    assert len(sms_bodies(fake)) == 1


def test_the_least_privilege_role_of_the_guide_runs_the_ledger(fake, run_module, postgresql, role):
    """The role owns its schema and nothing else: no CREATE on the database, no superuser."""
    name, password = role("schema")
    args = dict(devices=DEVICES, sms_message="hello", ledger_url=postgresql.url(user=name), ledger_password=password, ledger_schema=name)
    assert run_module(vz_sms_send.main, check_mode=True, **args)[0]["devices_sent"] == 5
    assert run_module(vz_sms_send.main, **args)[0]["devices_sent"] == 5
    assert run_module(vz_sms_send.main, **args)[0]["devices_skipped"] == 5
    assert postgresql.execute("SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = %s", (name,)) == [(False, False)]


def test_schemas_created_at_once_by_many_runs_are_created_once(postgresql):
    where = Database(postgresql.url(), postgresql.password, postgresql.new_schema())
    errors = []

    def open_ledger():
        try:
            Ledger(where).close()
        except ThingSpaceError as error:
            errors.append(error.message)

    threads = [threading.Thread(target=open_ledger) for _thread in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert postgresql.execute('SELECT version FROM "%s".schema_version' % where.schema) == [(_store_postgresql.SCHEMA_VERSION,)]


def test_a_role_with_only_row_rights_runs_a_ledger_its_owner_created(fake, run_module, postgresql, role, database):
    """The stricter setup of the guide: an owner creates the tables once, the playbooks' role may only read and write rows."""
    assert not run_module(vz_sms_send.main, devices=DEVICES[:1], sms_message="hello", **database)[1]
    name, password = role()
    schema = database["ledger_schema"]
    for grant in ("USAGE ON SCHEMA %s", "SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %s", "USAGE ON ALL SEQUENCES IN SCHEMA %s"):
        postgresql.execute("GRANT %s TO %s" % (grant % schema, name))
    args = dict(devices=DEVICES, sms_message="hello", ledger_url=postgresql.url(user=name), ledger_password=password, ledger_schema=schema)
    assert run_module(vz_sms_send.main, **args)[0]["devices_sent"] == 4
    assert run_module(vz_sms_send.main, **dict(args, idempotency_key="wave-2"))[0]["devices_sent"] == 5
    assert run_module(vz_sms_send.main, **args)[0]["devices_skipped"] == 5


@contextlib.contextmanager
def _restart_after(postgresql, owner, name, call):
    """While in the context, restart the server (every session dropped) right after ``owner.name``'s ``call``-th
    call returns or raises."""
    real, calls = getattr(owner, name), []

    def wrapped(*args, **kwargs):
        calls.append(name)
        try:
            return real(*args, **kwargs)
        finally:
            if len(calls) == call:
                postgresql.restart()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(owner, name, wrapped)
        yield


def test_a_database_restarted_between_claim_and_settle_leaves_the_batch_unconfirmed_and_never_sent_again(fake, run_module, postgresql, database):
    args = dict(devices=DEVICES, sms_message="hello", batch_size=2, **database)
    with _restart_after(postgresql, ThingSpaceClient, "send_sms", 2):  # batch 2 is accepted, then the database restarts
        result, failed = run_module(vz_sms_send.main, **args)
    request_id = result["request_ids"][1]
    assert failed and result["msg"].startswith("Batch 2 of 3 was sent (request id %s), but the ledger could not record it: The ledger database %s: "
                                               % (request_id, _where(postgresql, "postgres", database["ledger_schema"])))
    assert result["msg"].endswith("It stays pending there, so a re-run reports it unconfirmed and does not send it again; 1 later batch(es) were "
                                  "not attempted, a re-run sends them")
    assert [(batch["status"], "error" in batch) for batch in result["batches"]] == [("sent", False), ("sent", True)]
    assert result["batches"][1] == {"index": 1, "devices": 2, "status": "sent", "request_id": request_id,
                                    "error": result["msg"].split("could not record it: ", 1)[1].split(". It stays pending", 1)[0]}
    assert result["batches"][1]["error"].startswith("The ledger database %s: " % _where(postgresql, "postgres", database["ledger_schema"]))
    assert result["devices_sent"] == 4 and len(sms_bodies(fake)) == 2

    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and result["devices_sent"] == 1 and result["devices_unconfirmed"] == DEVICES[2:4]
    assert [[device["id"] for device in body["deviceIds"]] for body in sms_bodies(fake)] == [[d["id"] for d in DEVICES[i:i + 2]] for i in (0, 2, 4)]


def test_a_database_lost_before_a_claim_fails_that_batch_and_keeps_what_was_sent(fake, run_module, postgresql, database):
    args = dict(devices=DEVICES, sms_message="hello", batch_size=2, **database)
    with _restart_after(postgresql, Ledger, "settle", 1):  # batch 1 is sent and recorded, then the database restarts
        result, failed = run_module(vz_sms_send.main, **args)
    assert failed and result["msg"].startswith("Batch 2 of 3 was not sent: the ledger could not claim it: The ledger database ")
    assert result["msg"].endswith("; 1 later batch(es) were not attempted, a re-run sends them")
    assert [batch["status"] for batch in result["batches"]] == ["sent", "failed"] and result["devices_sent"] == 2
    error = result["batches"][1].pop("error")
    assert result["batches"][1] == {"index": 1, "devices": 0, "status": "failed"}
    assert error.startswith("The ledger database %s: " % _where(postgresql, "postgres", database["ledger_schema"]))
    assert result["msg"] == "Batch 2 of 3 was not sent: the ledger could not claim it: %s; 1 later batch(es) were not attempted, a re-run sends them" % error

    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and result["devices_sent"] == 3 and result["devices_skipped"] == 2 and result["devices_unconfirmed"] == []
    assert sorted(device["id"] for body in sms_bodies(fake) for device in body["deviceIds"]) == sorted(d["id"] for d in DEVICES)


def test_a_connection_dropped_mid_claim_claims_nothing(postgresql):
    """The claim's transaction is cut while it waits inside (on a row another transaction holds): the server rolls
    back all it wrote, the purpose included, and the claimer gets an error naming the database."""
    import psycopg

    where = Database(postgresql.url(), postgresql.password, postgresql.new_schema())
    ledger = Ledger(where)
    ledger.settle(ledger.claim(SCOPE, KEY, ["mdn:0"])[0], "sent", "r0")
    outcome = []
    with psycopg.connect(where.url, password=where.password) as blocker:  # a transaction left open
        blocker.execute('INSERT INTO "%s".sends (key_id, target, state, updated_at) SELECT id, %%s, %%s, 0 FROM "%s".send_keys'
                        % (where.schema, where.schema), ("mdn:3", "sent"))
        claimer = threading.Thread(target=lambda: outcome.append(_claim_or_error(where, ["mdn:1", "mdn:2", "mdn:3"])))
        claimer.start()
        waiting = _wait_for(lambda: postgresql.execute("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                                                       "application_name = 'thingspace.m2m'"))
        postgresql.execute("SELECT pg_terminate_backend(%s)", (waiting[0][0],))
        claimer.join(30)
        blocker.rollback()
    assert outcome[0].startswith("The ledger database postgres@127.0.0.1:%d/postgres (schema %s): " % (postgresql.port, where.schema))
    assert ledger.states(SCOPE, KEY) == {"mdn:0": "sent"}
    assert postgresql.execute('SELECT purpose FROM "%s".send_keys' % where.schema) == [(None,)]
    assert ledger.claim(SCOPE, KEY, ["mdn:1", "mdn:2", "mdn:3"])[1] == ["mdn:1", "mdn:2", "mdn:3"]


def _claim_or_error(where, targets):
    ledger = Ledger(where)
    try:
        return ledger.claim(SCOPE, KEY, targets, purpose={"message": "m"})
    except ThingSpaceError as error:
        return error.message
    finally:
        ledger.close()


def _wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return found


@pytest.mark.parametrize(
    ("answer", "status", "recorded", "rerun"),
    [
        ((500, {"errorCode": "SERVER_ERROR", "errorMessage": "boom"}), "unconfirmed",
         ". The ledger could not record it (The ledger database %s: ",
         "); it stays pending there, which a re-run also reports as unconfirmed and does not send again; after checking the devices, re-run with "
         "resend_unconfirmed: true to send it once more"),
        ((400, {"errorCode": "REQUEST_FAILED.UnexpectedError", "errorMessage": "no"}), "failed",
         "; the ledger could not forget it (The ledger database %s: ",
         "), so a re-run reports it unconfirmed and resend_unconfirmed: true sends it"),
    ],
)
def test_a_failed_or_unconfirmed_batch_the_ledger_cannot_record_stays_unconfirmed(fake, run_module, postgresql, database, answer, status,
                                                                                  recorded, rerun):
    args = dict(devices=DEVICES, sms_message="hello", **database)
    fake.script("POST", r"/api/m2m/v1/sms$", answer)
    with _restart_after(postgresql, ThingSpaceClient, "send_sms", 1):
        result, failed = run_module(vz_sms_send.main, **args)
    assert failed and result["batches"][0]["status"] == status
    assert result["batches"][0]["error"] == "Failed to send SMS: HTTP %d %s: %s%s" % (
        answer[0], answer[1]["errorCode"], answer[1]["errorMessage"], "; the request may have been processed" if status == "unconfirmed" else "")
    assert recorded % _where(postgresql, "postgres", database["ledger_schema"]) in result["msg"] and result["msg"].endswith(rerun)
    assert result["msg"].startswith("Batch 1 of 1 %s: %s" % ("is unconfirmed" if status == "unconfirmed" else "failed, nothing of it was sent",
                                                             result["batches"][0]["error"]))
    result, failed = run_module(vz_sms_send.main, **args)
    assert not failed and result["devices_sent"] == 0 and len(result["devices_unconfirmed"]) == 5
    result, failed = run_module(vz_sms_send.main, resend_unconfirmed=True, **args)
    assert not failed and result["devices_sent"] == 5 and len(sms_bodies(fake)) == 2


def test_a_ledger_refused_after_connecting_leaves_no_session_open(postgresql):
    where = Database(postgresql.url(application_name="refused_ledger"), postgresql.password, postgresql.new_schema())
    Ledger(where).close()
    postgresql.execute('UPDATE "%s".schema_version SET version = %d' % (where.schema, _store_postgresql.SCHEMA_VERSION + 1))
    with pytest.raises(ThingSpaceError) as caught:
        Ledger(where)
    assert "newer thingspace.m2m" in caught.value.message  # the error, and the store it came from, still referenced here
    assert postgresql.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'refused_ledger'") == [(0,)]


def test_identifiers_compare_byte_by_byte_whatever_the_database_collation(postgresql):
    schema = postgresql.new_schema()
    Ledger(Database(postgresql.url(), postgresql.password, schema)).close()
    collations = postgresql.execute("SELECT table_name, column_name, collation_name FROM information_schema.columns WHERE table_schema = %s "
                                    "AND data_type = 'text' AND column_name IN ('scope', 'key', 'target', 'claim') ORDER BY 1, 2", (schema,))
    assert collations == [("campaign_devices", "target", "C"), ("campaigns", "scope", "C"), ("send_keys", "key", "C"), ("send_keys", "scope", "C"),
                          ("sends", "claim", "C"), ("sends", "target", "C"), ("starts", "scope", "C")]


@pytest.mark.parametrize("rest", ["", "?application_name=https://awx.example"])
def test_a_url_python_cannot_split_still_never_shows_its_password(fake, run_module, rest):
    """libpq quotes the whole URL when it cannot find the end of an IPv6 address; the password in it is masked."""
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", ledger_url="postgresql://ops:Pw-7x@[::1/ledger" + rest)
    assert failed and result["msg"] == ('ledger_url is not a URL libpq accepts: end of string reached when looking for matching "]" in IPv6 host '
                                        'address in URI: "postgresql://ops:********@[::1/ledger%s"' % rest)
    assert fake.calls == []


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("password=Pw%zz7x&sslmode=require", 'invalid percent-encoded token: "********"'),
        ("sslmode=require&password=Pw%zz7x", 'invalid percent-encoded token: "********"'),
        # An empty password is nothing to hide: the message is left as it is.
        ("password=&sslmod=require", 'invalid URI query parameter: "sslmod"'),
    ],
)
def test_a_password_in_the_url_parameters_is_never_shown(fake, run_module, query, shown):
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", ledger_url="postgresql://ops@127.0.0.1:1/ledger?" + query)
    assert failed and result["msg"] == "ledger_url is not a URL libpq accepts: " + shown


def test_a_url_that_names_nothing_is_named_by_libpq_defaults(fake, run_module, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(port))
    result, failed = run_module(vz_sms_send.main, devices=DEVICES, sms_message="hello", ledger_url="postgresql://")
    assert failed and result["msg"].startswith("Cannot connect to the ledger database (default user)@(default host):5432/(default database) "
                                               "(schema thingspace): connection failed: ")
    assert fake.calls == []


@pytest.mark.parametrize(
    ("url", "schema", "message"),
    [
        ("mysql://ops@127.0.0.1/ledger", "s", "ledger_url: the scheme 'mysql' is not a PostgreSQL URL; write postgresql://user@host:5432/dbname "
                                              "(libpq parameters such as sslmode after ?)"),
        ("postgresql://ops@127.0.0.1/ledger", "", "ledger_schema: '' is not a schema name thingspace.m2m uses; use lower-case letters, digits and _ "
                                                  "(at most 63, not starting with a digit)"),
        ("postgresql://ops@127.0.0.1/ledger", None, "ledger_schema: None is not a schema name thingspace.m2m uses; use lower-case letters, digits "
                                                    "and _ (at most 63, not starting with a digit)"),
    ],
)
def test_the_store_refuses_a_url_or_schema_the_module_would_refuse(url, schema, message):
    with pytest.raises(ThingSpaceError) as caught:
        Ledger(Database(url, None, schema))
    assert caught.value.message == message


def test_a_url_with_another_url_in_its_parameters_is_postgresql(postgresql):
    url = postgresql.url(application_name="https://awx.example/jobs/1")
    ledger = Ledger(Database(url, postgresql.password, postgresql.new_schema()))
    assert ledger.states(SCOPE, KEY) == {}
    ledger.close()


def test_check_mode_on_a_ledger_of_an_older_collection_is_refused_naming_the_database(postgresql):
    where = Database(postgresql.url(), postgresql.password, postgresql.new_schema())
    Ledger(where).close()
    postgresql.execute('UPDATE "%s".schema_version SET version = 1' % where.schema)
    with pytest.raises(ThingSpaceError) as caught:
        Ledger(where, read_only=True)
    assert caught.value.message == ("The ledger database postgres@127.0.0.1:%d/postgres (schema %s) was written by an older thingspace.m2m (schema 1), "
                                    "and check mode does not change it; a run without check mode migrates it" % (postgresql.port, where.schema))


def test_a_database_error_that_is_not_about_privileges_gets_no_hint(postgresql):
    where = Database(postgresql.url(), postgresql.password, postgresql.new_schema())
    ledger = Ledger(where)
    ledger.settle(ledger.claim(SCOPE, KEY, ["mdn:1"])[0], "sent", "r1")
    postgresql.execute('DROP TABLE "%s".sends' % where.schema)
    with pytest.raises(ThingSpaceError) as caught:
        ledger.states(SCOPE, KEY)
    assert caught.value.message == ('The ledger database postgres@127.0.0.1:%d/postgres (schema %s): relation "sends" does not exist LINE 1: '
                                    "...target, state, request_id, claim, updated_at FROM sends WHER... ^" % (postgresql.port, where.schema))


def test_a_ledger_creating_its_schema_lets_others_create_theirs_while_it_runs(postgresql):
    """The lock that makes runs create one schema once is released when the schema is made, not when the run ends."""
    first = Ledger(Database(postgresql.url(), postgresql.password, postgresql.new_schema()))
    # lock_timeout: waiting for the first run's lock fails in 2 s instead of waiting for it to end.
    second = Ledger(Database(postgresql.url(options="-c%20lock_timeout%3D2000"), postgresql.password, postgresql.new_schema()))
    assert second.states(SCOPE, KEY) == {} and first.states(SCOPE, KEY) == {}
    first.close()
    second.close()


@pytest.mark.parametrize("drawn", [0, (1 << 63) - 1, 1 << 63, (1 << 64) - 1], ids=["lowest", "-1", "0", "highest"])
def test_a_claim_is_in_flight_for_another_session_whatever_its_lock_number(postgresql, monkeypatch, drawn):
    """Lock numbers are signed 64-bit; pg_locks shows them as two unsigned halves, which the other session joins again."""
    where = Database(postgresql.url(), postgresql.password, postgresql.new_schema())
    sender = Ledger(where)
    monkeypatch.setattr(_store_postgresql.secrets, "randbits", lambda bits: drawn)
    claim_id = sender.claim(SCOPE, KEY, ["mdn:1"])[0]
    monkeypatch.undo()  # the other session's claims draw at random
    assert claim_id.endswith(":%d" % (drawn - (1 << 63)))
    other = Ledger(where)
    assert other.states(SCOPE, KEY) == {"mdn:1": "in_flight"}
    assert other.claim(SCOPE, KEY, ["mdn:1"], mode="unconfirmed")[1] == []
    sender.settle(claim_id, "sent", "r1")
    assert other.states(SCOPE, KEY) == {"mdn:1": "sent"}


def test_a_settled_or_released_batch_leaves_no_lock_held(postgresql):
    """A run of many batches holds one lock at a time: the server's lock table is shared and bounded."""
    ledger = Ledger(Database(postgresql.url(application_name="many_batches"), postgresql.password, postgresql.new_schema()))
    ledger.settle(ledger.claim(SCOPE, KEY, ["mdn:1"])[0], "sent", "r1")
    ledger.release(ledger.claim(SCOPE, KEY, ["mdn:2"])[0])
    assert ledger.claim(SCOPE, KEY, ["mdn:1"])[1] == []  # nothing claimed: its lock is not kept either
    held = postgresql.execute("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                              "AND a.application_name = 'many_batches'")
    assert held == [(0,)]
    ledger.close()


def test_a_copy_the_database_refuses_part_way_copies_nothing_and_says_why(postgresql, tmp_path):
    source = Ledger(str(tmp_path / "l.sqlite3"))
    source.settle(source.claim(SCOPE, KEY, ["mdn:1"])[0], "sent", "r1")
    where = Database(postgresql.url(), postgresql.password, postgresql.new_schema())
    ledger = Ledger(where)
    schema = where.schema
    postgresql.execute(f"""CREATE FUNCTION "{schema}".refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by a trigger'; END $$;
                           CREATE TRIGGER refuse BEFORE INSERT ON "{schema}".sends FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse()""")
    with pytest.raises(ThingSpaceError) as caught:
        ledger.copy_from(source)
    assert caught.value.message.startswith("The ledger database postgres@127.0.0.1:%d/postgres (schema %s): refused by a trigger CONTEXT: "
                                           % (postgresql.port, where.schema))
    assert ledger.records() == [] and not ledger.knows(SCOPE, KEY)


def test_a_lookup_among_many_values_reads_the_index_however_small_the_table_was_when_it_first_ran(postgresql):
    """``among``'s statements are planned for their values at each run: psycopg prepares a statement run 5 times, and
    PostgreSQL kept the generic plan it made while the table was small (a scan of every row) for the whole session."""
    ledger = Ledger(Database(postgresql.url(), postgresql.password, postgresql.new_schema()))
    store = ledger.store
    lookup = "SELECT event_id FROM callbacks WHERE event_id %s"
    try:
        store.execute("INSERT INTO callbacks (event_id, type, event, received_at) SELECT 'e' || g, 'sms_sent', '{}', 1 FROM generate_series(1, 100) g")
        store.execute("ANALYZE callbacks")
        for number in range(15):  # psycopg prepares at the 5th run; PostgreSQL plans the first 5 runs of a prepared statement for their values
            assert [len(store.rows(lookup % among, values)) for among, values in store.among(["e1", "e%d" % (number + 2), "none"])] == [2]
        store.execute("INSERT INTO callbacks (event_id, type, event, received_at) SELECT 'f' || g, 'sms_sent', '{}', 1 FROM generate_series(1, 20000) g")
        # The session's scans of the table not yet reported to the statistics, the lookups' among them.
        scans = "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'callbacks'::regclass"
        with store.transaction():
            before = store.rows(scans)
            for number in range(10):
                assert [len(store.rows(lookup % among, values)) for among, values in store.among(["f1", "f%d" % (number + 2), "none"])] == [2]
            assert store.rows(scans) == before
    finally:
        ledger.close()
