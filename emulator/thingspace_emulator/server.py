"""HTTP plumbing: a threading HTTP/1.1 server, routing to the vendor and admin handlers, the request
log and fault injection (status before or after processing, latency, a connection dropped after the
request was processed)."""

import contextlib
import re
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from . import __version__, admin, api, errors
from .admin_models import AdminError, RawJson
from .core import Emulator

ADMIN_PREFIX = "/_emulator/"


def routes(table: list, flags: int = 0) -> list:
    return [(method, re.compile(pattern, flags), handler) for method, pattern, handler in table]


# Vendor paths match without regard to case (the vendor's pages write both startCallbacks and startcallbacks).
VENDOR_ROUTES = routes(
    [
        ("POST", r"/api/ts/v1/oauth2/token", api.token),
        ("POST", r"/api/m2m/v1/session/login", api.login),
        ("POST", r"/api/m2m/v1/session/logout", api.logout),
        ("POST", r"/api/m2m/v1/sms", api.send_sms),
        ("PUT", r"/api/m2m/v1/sms/(?P<account>[^/]+)/startCallbacks", api.start_callbacks),
        ("GET", r"/api/m2m/v1/sms/(?P<account>[^/]+)/history", api.history),
        ("POST", r"/api/m2m/v1/callbacks/(?P<account>[^/]+)", api.register_callback),
        ("GET", r"/api/m2m/v1/callbacks/(?P<account>[^/]+)", api.list_callbacks),
        ("DELETE", r"/api/m2m/v1/callbacks/(?P<account>[^/]+)/name/(?P<service>[^/]+)", api.deregister_callback),
        ("POST", r"/api/m2m/v1/devices/actions/list", api.list_devices),
    ],
    re.IGNORECASE,
)
ADMIN_ROUTES = routes(
    [
        ("GET", r"/_emulator/health", admin.health),
        ("POST", r"/_emulator/reset", admin.reset),
        ("GET", r"/_emulator/config", admin.get_config),
        ("POST", r"/_emulator/config", admin.set_config),
        ("POST", r"/_emulator/expire", admin.expire),
        ("POST", r"/_emulator/unlock", admin.unlock),
        ("GET", r"/_emulator/requests", admin.requests),
        ("GET", r"/_emulator/sms", admin.sent_sms),
        ("GET", r"/_emulator/devices", admin.devices),
        ("GET", r"/_emulator/callbacks", admin.callbacks),
        ("POST", r"/_emulator/mo", admin.inject_mo),
        ("POST", r"/_emulator/behaviours", admin.add_behaviours),
        ("GET", r"/_emulator/behaviours", admin.list_behaviours),
        ("DELETE", r"/_emulator/behaviours", admin.clear_behaviours),
        ("POST", r"/_emulator/portal-listeners", admin.add_portal_listener),
        ("GET", r"/_emulator/portal-listeners", admin.portal_listeners),
        ("POST", r"/_emulator/faults", admin.add_fault),
        ("GET", r"/_emulator/faults", admin.list_faults),
        ("DELETE", r"/_emulator/faults", admin.clear_faults),
        ("GET", r"/_emulator/state", admin.state),
        ("POST", r"/_emulator/listener/(?P<name>[^/]+)", admin.sink_receive),
        ("GET", r"/_emulator/listener/(?P<name>[^/]+)", admin.sink_list),
    ]
)
# The gateway's "Bad Context" answer (the vendor's synchronous error page).
NO_RESOURCE = errors.gateway_fault(
    400,
    "900906",
    "No matching resource found in the API for the given request",
    "Access failure for API: /m2m/v1, version: v1. Check the API documentation and add a proper REST resource path to the invocation URL",
)


def dispatch(emulator: Emulator, table: list, request: api.Request, missing: errors.ApiError) -> api.Reply:
    for method, pattern, handler in table:
        match = pattern.fullmatch(request.path)
        if match and method == request.method:
            arguments = {name: unquote(value) for name, value in match.groupdict().items()}
            try:
                return handler(emulator, request, **arguments)
            except errors.ApiError as exc:
                return api.Reply(exc.status, exc.body, exc.headers)
    return api.Reply(missing.status, missing.body, missing.headers)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"thingspace-emulator/{__version__}"
    sys_version = ""
    # One buffered write per response, sent at once: no Nagle / delayed-ACK stalls on keep-alive.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server: "EmulatorServer"

    def do_GET(self) -> None:
        self.handle_request()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def handle_request(self) -> None:
        emulator = self.server.emulator
        parts = urlsplit(self.path)
        params = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        request = api.Request(self.command, parts.path, parts.query, params, self.headers, self.read_body())
        is_admin = parts.path.startswith(ADMIN_PREFIX)
        try:
            if is_admin:
                missing = admin.admin_error(404, f"no admin endpoint {self.command} {parts.path}")
                reply = dispatch(emulator, ADMIN_ROUTES, request, missing)
                self.write(reply, exclude_none=False)
                return
            fault = emulator.faults.take(self.command, parts.path)
            if fault is not None and fault.latency:
                time.sleep(fault.latency)
            answers_status = fault is not None and fault.status is not None
            if not answers_status or fault.process:
                reply = dispatch(emulator, VENDOR_ROUTES, request, NO_RESOURCE)
            if answers_status:
                reply = self.fault_reply(fault)
            if fault is not None and fault.drop:
                emulator.log_request(self.command, parts.path, parts.query, None)
                self.drop()
                return
            self.write(reply, exclude_none=True)
            emulator.log_request(self.command, parts.path, parts.query, reply.status)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            if is_admin:
                body = AdminError(error="internal error; see the emulator's standard error")
            else:
                body = errors.error_body(errors.UNEXPECTED, "The emulator failed; see its standard error.")
            self.write(api.Reply(500, body), exclude_none=True)

    @staticmethod
    def fault_reply(fault) -> api.Reply:
        headers = {} if fault.retryAfter is None else {"Retry-After": str(fault.retryAfter)}
        body = fault.body
        if body is None:
            body = errors.error_body(errors.UNEXPECTED, f"Injected fault: HTTP {fault.status}.").model_dump()
        return api.Reply(fault.status, RawJson(body), headers)

    def write(self, reply: api.Reply, exclude_none: bool) -> None:
        payload = b"" if reply.body is None else reply.body.model_dump_json(exclude_none=exclude_none).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def drop(self) -> None:
        """Close the connection without writing a byte of the response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, emulator: Emulator, host: str, port: int, verbose: bool = False):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.emulator = emulator
        self.verbose = verbose
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(emulator: Emulator, host: str, port: int, verbose: bool = False) -> EmulatorServer:
    """Start the emulator and a server for it on a background thread; returns the server."""
    emulator.start()
    server = EmulatorServer(emulator, host, port, verbose)
    threading.Thread(target=server.serve_forever, args=(0.05,), name="http", daemon=True).start()
    return server


def shutdown(server: EmulatorServer) -> None:
    server.shutdown()
    server.server_close()
    server.emulator.stop()
