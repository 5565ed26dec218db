"""Transport against real loopback servers: certificate checks that the environment cannot turn back on, and
redirects that never carry the tokens anywhere."""

from __future__ import annotations

import datetime
import ipaddress
import json
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
from ansible_collections.thingspace.m2m.plugins.module_utils.models import DeviceId, SendSmsRequest
from ansible_collections.thingspace.m2m.plugins.module_utils.transport import Transport

from fake_api import ACCOUNT

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


SMS = SendSmsRequest(sms_message="hi", device_ids=[DeviceId(kind="mdn", id="5551234567")])


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
