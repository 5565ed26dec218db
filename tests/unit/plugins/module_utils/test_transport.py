"""Transport against real loopback servers: certificate checks that the environment cannot turn back on, and
redirects that never carry the tokens anywhere."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Credentials
from ansible_collections.thingspace.m2m.plugins.module_utils.client import ThingSpaceClient
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.models import SendSmsRequest
from ansible_collections.thingspace.m2m.plugins.module_utils.transport import Transport

from fake_api import ACCOUNT, API

PRE_ISSUED = Credentials(None, None, None, None, "access-token", "session-token")


class _Handler(BaseHTTPRequestHandler):
    """Records each request (method, path, headers) on the server; answers with ``server.answer(path)``:
    (status, headers), a JSON body ``{"success": true}``."""

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.received.append((self.command, self.path, dict(self.headers)))
        status, headers = self.server.answer(self.path)
        body = json.dumps({"success": True}).encode()
        self.send_response(status)
        for name, value in dict({"Content-Type": "application/json", "Content-Length": str(len(body))}, **headers).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _handle

    def log_message(self, *args):
        pass


@contextmanager
def serving(answer=lambda path: (200, {}), tls=None):
    """A loopback HTTP(S) server on a free port: yields (base URL, list of requests received)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.received, server.answer = [], answer
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield "%s://127.0.0.1:%d" % ("https" if tls else "http", server.server_port), server.received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (server TLS context, path of the certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_path), str(key_path))
    return context, str(cert_path)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_validate_certs_holds_when_a_ca_bundle_variable_is_set(monkeypatch, self_signed, variable):
    context, cert_path = self_signed
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)  # it takes precedence over CURL_CA_BUNDLE
    monkeypatch.setenv(variable, requests.certs.where())
    with serving(tls=context) as (url, received):
        assert Transport(url, validate_certs=False).send("GET", "/probe", write=False, what="probe").status_code == 200
        with pytest.raises(ThingSpaceError, match=r"^Failed to probe: TLS error talking to %s: .*CERTIFICATE_VERIFY_FAILED.* \(validate_certs\)$" % url):
            Transport(url, validate_certs=True).send("GET", "/probe", write=False, what="probe")
        monkeypatch.setenv(variable, cert_path)  # the variable is how to trust a private CA
        assert Transport(url, validate_certs=True).send("GET", "/probe", write=False, what="probe").status_code == 200
    assert len(received) == 2


SMS = SendSmsRequest(sms_message="hi", device_ids=[{"kind": "mdn", "id": "5551234567"}])


@contextmanager
def garbling_after_the_request(tls):
    """A TLS server on a free loopback port that reads one request, then answers with a record that cannot be decrypted:
    the client's TLS error comes after the request reached the server. Yields (base URL, requests received)."""
    listener = socket.create_server(("127.0.0.1", 0))
    received = []

    def serve():
        connection = tls.wrap_socket(listener.accept()[0], server_side=True)
        request = b""
        while b"\r\n\r\n" not in request:
            request += connection.recv(65536)
        head, _blank, body = request.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")))
        while len(body) < length:
            body += connection.recv(65536)
        received.append(request)
        raw = socket.socket(fileno=connection.detach())
        raw.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
        # Close only once the client has: closing with its bytes unread would reset the connection first.
        raw.settimeout(10)
        while raw.recv(65536):
            pass
        raw.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield "https://127.0.0.1:%d" % listener.getsockname()[1], received
    finally:
        thread.join(10)
        listener.close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_tls_error_after_the_sms_was_sent_is_ambiguous_not_never_sent(self_signed):
    """Before the fix any TLS error of POST /sms read as "not sent", so the next run sent the devices again."""
    with garbling_after_the_request(self_signed[0]) as (url, received), pytest.raises(ThingSpaceError) as caught:
        ThingSpaceClient(url, PRE_ISSUED, retries=2, validate_certs=False).send_sms(SMS)
    assert len(received) == 1 and received[0].startswith(b"POST /api/m2m/v1/sms ")
    assert caught.value.ambiguous
    assert caught.value.message.startswith("Failed to send SMS: TLS error talking to %s, perhaps after the request was sent: " % url)


def test_a_refused_certificate_is_never_sent(self_signed):
    with serving(tls=self_signed[0]) as (url, received), pytest.raises(ThingSpaceError) as caught:
        ThingSpaceClient(url, PRE_ISSUED, retries=2).send_sms(SMS)
    assert received == [] and not caught.value.ambiguous and caught.value.message.endswith("(validate_certs)")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("call", ["start_callbacks", "send_sms"])
def test_a_redirect_is_not_followed_and_the_tokens_stay(status, call):
    with serving() as (elsewhere, received_elsewhere):
        location = elsewhere + "/api/m2m/v1/collect"  # another port: another origin
        with serving(lambda path: (status, {"Location": location})) as (api_url, received):
            client = ThingSpaceClient(api_url, PRE_ISSUED, retries=0)
            with pytest.raises(ThingSpaceError) as caught:
                client.start_callbacks(ACCOUNT) if call == "start_callbacks" else client.send_sms(SMS)
    assert received_elsewhere == []
    assert len(received) == 1 and received[0][2]["VZ-M2M-Token"] == "session-token"
    assert caught.value.message.endswith(
        ": HTTP %d redirect to %s, not followed (it would take the tokens along); if the API moved, set api_url to its new address"
        % (status, location))
    assert caught.value.status == status and not caught.value.ambiguous


# --- the retry rules, against the fake API ----------------------------------------------------------------------

CREDS = Credentials("cid", "csecret", "user", "pass", None, None)
SEND = r"/api/m2m/v1/sms$"


def client_and_sleeps(retries=2):
    sleeps = []
    return ThingSpaceClient(API, CREDS, retries=retries, sleep=sleeps.append), sleeps


def test_every_request_names_the_collection_as_user_agent(fake):
    client_and_sleeps()[0].send_sms(SMS)
    assert [request.headers["User-Agent"] for request, _settings in fake.sent] == ["thingspace.m2m-ansible"] * 3


def test_a_transport_built_without_options_validates_certificates_waits_30_s_and_tries_5_times(fake, monkeypatch):
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    sleeps = []
    fake.script("GET", "probe", *[(503, None)] * 5)
    with pytest.raises(ThingSpaceError, match=r"^Failed to probe: HTTP 503: FAKE; gave up after 5 attempts$"):
        Transport(API, sleep=sleeps.append).send("GET", "/probe", write=False, what="probe")
    assert len(sleeps) == 4 and {(settings["timeout"], settings["verify"]) for _request, settings in fake.sent} == {(30.0, True)}


def test_a_connect_timeout_on_a_send_is_never_sent_so_it_is_retried(fake):
    client, sleeps = client_and_sleeps()
    fake.script("POST", SEND, requests.exceptions.ConnectTimeout("connect timed out"))
    assert client.send_sms(SMS)
    assert fake.count("POST", SEND) == 2 and len(sleeps) == 1


def test_a_connection_error_without_detail_on_a_send_is_ambiguous(fake):
    client, sleeps = client_and_sleeps()
    fake.script("POST", SEND, requests.exceptions.ConnectionError())
    with pytest.raises(ThingSpaceError) as caught:
        client.send_sms(SMS)
    assert caught.value.message == ("Failed to send SMS: no answer from %s after the request was sent (ConnectionError); it may have been "
                                    "processed" % API)
    assert caught.value.ambiguous and fake.count("POST", SEND) == 1 and sleeps == []


def test_a_read_that_cannot_connect_is_tried_retries_plus_one_times(fake):
    client, sleeps = client_and_sleeps(retries=2)
    client.list_callbacks(ACCOUNT)  # logged in
    fake.script("GET", "callbacks", *[requests.exceptions.ConnectionError("connection refused")] * 3)
    with pytest.raises(ThingSpaceError) as caught:
        client.list_callbacks(ACCOUNT)
    assert caught.value.message == "Failed to list callback listeners of account '%s': cannot reach %s after 3 attempts: connection refused" % (
        ACCOUNT, API)
    assert not caught.value.ambiguous and fake.count("GET", "callbacks") == 4 and len(sleeps) == 2


def test_a_read_that_keeps_failing_says_it_gave_up(fake):
    client, sleeps = client_and_sleeps(retries=1)
    fake.script("PUT", "startCallbacks", (504, {"errorCode": "GATEWAY_TIMEOUT", "errorMessage": "slow"}), (504, None))
    with pytest.raises(ThingSpaceError) as caught:
        client.start_callbacks(ACCOUNT)
    assert caught.value.message == "Failed to start SMS callbacks for account '%s': HTTP 504: FAKE; gave up after 2 attempts" % ACCOUNT
    assert caught.value.status == 504 and len(sleeps) == 1


def test_a_server_error_to_a_send_says_it_may_have_been_processed(fake):
    client, sleeps = client_and_sleeps()
    fake.script("POST", SEND, (500, {"errorCode": "REQUEST_FAILED.UnexpectedError", "errorMessage": "boom"}))
    with pytest.raises(ThingSpaceError) as caught:
        client.send_sms(SMS)
    assert caught.value.message == "Failed to send SMS: HTTP 500 REQUEST_FAILED.UnexpectedError: boom; the request may have been processed"
    assert caught.value.ambiguous and caught.value.status == 500 and sleeps == []


@pytest.mark.parametrize("status", [300, 399])
def test_every_3xx_is_a_redirect_not_followed(fake, status):
    client = client_and_sleeps()[0]
    fake.script("PUT", "startCallbacks", (status, None, {"Location": "https://elsewhere.example/x"}))
    with pytest.raises(ThingSpaceError) as caught:
        client.start_callbacks(ACCOUNT)
    assert caught.value.message == ("Failed to start SMS callbacks for account '%s': HTTP %d redirect to https://elsewhere.example/x, not "
                                    "followed (it would take the tokens along); if the API moved, set api_url to its new address"
                                    % (ACCOUNT, status))
    assert fake.count("PUT", "startCallbacks") == 1
