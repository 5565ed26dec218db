"""ThingSpaceModule's checks at start, before any connection (no name lookup, no socket): plain http only to
loopback unless the user opts in; names without whitespace around them."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.thingspace.m2m.plugins.modules import vz_sms_receive

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
