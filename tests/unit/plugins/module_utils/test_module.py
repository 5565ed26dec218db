"""ThingSpaceModule's checks at start, before any connection (no name lookup, no socket): plain http only to
loopback unless the user opts in; names without whitespace around them."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils import module
from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_receive, vz_sms_send

from fake_api import ACCOUNT


@pytest.fixture
def connections(monkeypatch):
    """Every name lookup and socket connection attempted, refused before anything leaves the machine."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.mark.parametrize("api_url", ["http://192.0.2.1:8080", "http://thingspace.example", "HTTP://[2001:db8::1]/", "http://127.0.0.1.example"])
def test_plain_http_to_a_host_that_is_not_loopback_is_refused_before_any_connection(run_module, connections, api_url):
    result, failed = run_module(vz_sms_receive.main, account_name=ACCOUNT, api_url=api_url)
    assert failed and result["msg"] == (
        "api_url: %r is plain http to a host that is not loopback, so client_secret, password and the tokens would cross the "
        "network in clear; use https, or set allow_insecure_http: true for a network you trust" % api_url
    )
    assert connections == []


@pytest.mark.parametrize(
    ("api_url", "allow_insecure_http"),
    [
        ("http://127.0.0.1:9", False),
        ("http://127.3.4.5:9", False),
        ("http://LocalHost:9", False),
        ("http://[::1]:9", False),
        ("https://192.0.2.1", False),
        ("http://192.0.2.1:8080", True),
    ],
)
def test_plain_http_is_used_for_loopback_or_when_opted_in(fake, run_module, connections, api_url, allow_insecure_http):
    result, failed = run_module(vz_sms_receive.main, account_name=ACCOUNT, api_url=api_url, allow_insecure_http=allow_insecure_http)
    assert not failed, result["msg"]
    assert fake.count("GET", "history") == 1 and connections == []


def test_an_account_name_with_whitespace_around_it_is_refused_before_any_connection(run_module, connections):
    result, failed = run_module(vz_sms_receive.main, account_name=" " + ACCOUNT)
    assert failed and result["msg"] == "account_name: %r has leading or trailing whitespace; remove it (names are matched exactly)" % (" " + ACCOUNT)
    assert connections == []


@pytest.mark.parametrize(
    ("ledger_url", "message"),
    [
        ("mysql://ledger@db.example/ops", "ledger_url: the scheme 'mysql' is not a PostgreSQL URL; write postgresql://user@host:5432/dbname "
                                          "(libpq parameters such as sslmode after ?)"),
        ("db.example:5432/ops", "ledger_url: the value is not a PostgreSQL URL; write postgresql://user@host:5432/dbname (libpq parameters such "
                                "as sslmode after ?)"),
    ],
)
def test_a_ledger_url_that_is_not_postgresql_is_refused_before_any_connection(fake, run_module, connections, ledger_url, message):
    result, failed = run_module(vz_sms_send.main, devices=[{"kind": "mdn", "id": "5550000001"}], sms_message="hi", ledger_url=ledger_url)
    assert failed and result["msg"] == message
    assert connections == [] and fake.calls == []


def test_a_ledger_schema_that_is_not_a_plain_name_is_refused_before_any_connection(fake, run_module, connections):
    result, failed = run_module(vz_sms_send.main, devices=[{"kind": "mdn", "id": "5550000001"}], sms_message="hi",
                                ledger_url="postgresql://ledger@db.example/ops", ledger_schema='x"; DROP SCHEMA public; --')
    assert failed and result["msg"].startswith("ledger_schema: 'x\"; DROP SCHEMA public; --' is not a schema name thingspace.m2m uses")
    assert connections == [] and fake.calls == []


def test_without_psycopg_a_postgresql_ledger_fails_at_start_naming_the_package(fake, run_module, connections, monkeypatch):
    real_find_spec = module.find_spec
    monkeypatch.setattr(module, "find_spec", lambda name: None if name == "psycopg" else real_find_spec(name))
    result, failed = run_module(vz_sms_send.main, devices=[{"kind": "mdn", "id": "5550000001"}], sms_message="hi",
                                ledger_url="postgresql://ledger@db.example/ops")
    assert failed and result["msg"].startswith("Failed to import the required Python library (psycopg) on ")
    assert "This is required for the PostgreSQL ledger (ledger_url)." in result["msg"]
    assert connections == [] and fake.calls == []


def test_the_ledger_password_joins_the_values_masked_in_output(fake, run_module):
    result, failed = run_module(vz_sms_send.main, devices=[{"kind": "mdn", "id": "5550000001"}], sms_message="hi",
                                ledger_url="postgresql://ledger:s%40cret@127.0.0.1:1/ops?sslmode=bogus-mode")
    assert failed and "s%40cret" not in repr(result) and "s@cret" not in repr(result)
    assert result["invocation"]["module_args"]["ledger_url"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
