# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one ThingSpace client: HTTP session, retries, error mapping and the API calls the modules use.

Retry rules (DESIGN.md): reads and other repeatable calls (GET/PUT/DELETE, the device list POST) retry
on connection errors, 429 and 502/503/504 with jittered backoff, honouring Retry-After. Writes (POST /sms,
logins) retry only where the request certainly was not processed: connection never established, 429,
503 with Retry-After. Anything else that leaves a write without an answer raises ThingSpaceError with
``ambiguous=True``; the caller records it and never repeats it on its own.
"""

from __future__ import annotations

import random
import time
import traceback
from urllib.parse import quote, urlsplit

try:
    import requests
    from urllib3.exceptions import NewConnectionError
except ImportError:
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
else:
    REQUESTS_IMPORT_ERROR = None

from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Authenticator
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.models import (
    CallbackListeners,
    CallbackName,
    CallbackRegistration,
    DeviceList,
    RequestId,
    SmsHistory,
    Success,
    parse,
)

M2M = "/api/m2m/v1"
RETRY_STATUSES = (429, 502, 503, 504)
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
# A Retry-After longer than this is not waited for: the call fails and says so.
MAX_RETRY_AFTER = 300.0


def _retry_after(response):
    """Seconds from a numeric Retry-After header, or None."""
    try:
        return max(0.0, float(response.headers.get("Retry-After")))
    except (TypeError, ValueError):
        return None


def _never_sent(exc):
    """True when the connection failed before any byte of the request was sent."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


class ThingSpaceClient:
    """Calls ThingSpace on behalf of one task. ``session`` and ``sleep`` are injectable for tests."""

    def __init__(self, api_url, credentials, token_cache=None, timeout=30.0, retries=4, validate_certs=True, session=None, sleep=time.sleep):
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self._sleep = sleep
        self._http = session or requests.Session()
        self._http.verify = validate_certs
        self._http.headers["User-Agent"] = "thingspace.m2m-ansible"
        self.auth = Authenticator(self.api_url, credentials, transport=self._login_transport, cache=token_cache)

    # --- HTTP -------------------------------------------------------------------------------------

    def _login_transport(self, method, path, **kwargs):
        return self._send(method, path, write=True, what="log in to ThingSpace", **kwargs)

    def _send(self, method, path, write, what, headers=None, **kwargs):
        """One call with the retry rules of the module docstring; returns the final response."""
        url = self.api_url + path
        attempt = 0
        while True:
            delay = None
            try:
                response = self._http.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
            except requests.exceptions.SSLError as exc:
                raise ThingSpaceError("Failed to %s: TLS error talking to %s: %s (validate_certs)" % (what, self.api_url, exc))
            except requests.exceptions.RequestException as exc:
                if write and not _never_sent(exc):
                    raise ThingSpaceError(
                        "Failed to %s: no answer from %s after the request was sent (%s); it may have been processed"
                        % (what, self.api_url, exc.__class__.__name__),
                        ambiguous=True,
                    )
                if attempt >= self.retries:
                    raise ThingSpaceError("Failed to %s: cannot reach %s after %d attempts: %s" % (what, self.api_url, attempt + 1, exc))
            else:
                status = response.status_code
                if status not in RETRY_STATUSES:
                    return response
                delay = _retry_after(response)
                if write and not (status == 429 or (status == 503 and delay is not None)):
                    raise ThingSpaceError.from_response(response, what, hint="the request may have been processed", ambiguous=True)
                if attempt >= self.retries or (delay or 0) > MAX_RETRY_AFTER:
                    raise ThingSpaceError.from_response(response, what, hint="gave up after %d attempts" % (attempt + 1))
            if delay is None:
                delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)
            self._sleep(delay)
            attempt += 1

    def call(self, method, path, what, body=None, write=False):
        """An authenticated M2M call. A rejected token is replaced and the call repeated, at most once per token
        kind (both cached tokens may be stale: revoked, or the service restarted)."""
        renewed = set()
        while True:
            headers = self.auth.headers()
            response = self._send(method, M2M + path, write=write, what=what, headers=headers, json=body)
            if response.status_code < 400:
                return response
            error = ThingSpaceError.from_response(response, what)
            kind = self.auth.rejected_token(error)
            if kind is None or kind in renewed:
                raise error
            self.auth.renew(kind, headers)
            renewed.add(kind)

    # --- SMS --------------------------------------------------------------------------------------

    def send_sms(self, request):
        """POST /sms; the request id. An answer that cannot be read after a 200 is ambiguous: it was accepted."""
        response = self.call("POST", "/sms", "send SMS", body=request.wire(), write=True)
        try:
            return parse(RequestId, response, "the send SMS answer").request_id
        except ThingSpaceError as error:
            raise ThingSpaceError(error.message, status=error.status, ambiguous=True)

    def start_callbacks(self, account):
        response = self.call("PUT", "/sms/%s/startCallbacks" % _seg(account), "start SMS callbacks for account %r" % account)
        return parse(Success, response, "the startCallbacks answer").success

    def sms_history(self, account, next_path=None):
        """One block of queued mobile-originated SMS: (messages, path of the next block or None).

        Asking for the next block acknowledges this one; a last block (HTTP 200) is acknowledged once returned.
        A ``next`` read changes the queue, so it follows the rules of a write: never repeated once it may have
        reached the service (its token is single-use)."""
        path = next_path or "/sms/%s/history" % _seg(account)
        response = self.call("GET", path, "read SMS history of account %r" % account, write=next_path is not None)
        page = parse(SmsHistory, response, "the SMS history answer")
        if response.status_code != 202 and not page.has_more_data:
            return page.messages, None
        location = response.headers.get("Location")
        if not location:
            raise ThingSpaceError("The SMS history answer says more data waits but has no Location header", status=response.status_code)
        return page.messages, _m2m_path(location)

    # --- callback listeners -----------------------------------------------------------------------

    def list_callbacks(self, account):
        response = self.call("GET", "/callbacks/%s" % _seg(account), "list callback listeners of account %r" % account)
        return parse(CallbackListeners, response, "the callback list answer").root

    def register_callback(self, account, service_name, url, username=None, password=None):
        body = CallbackRegistration(name=service_name, url=url, username=username, password=password).wire()
        response = self.call("POST", "/callbacks/%s" % _seg(account), "register the %s listener of account %r" % (service_name, account), body=body)
        return parse(CallbackName, response, "the callback registration answer")

    def delete_callback(self, account, service_name):
        path = "/callbacks/%s/name/%s" % (_seg(account), _seg(service_name))
        response = self.call("DELETE", path, "deregister the %s listener of account %r" % (service_name, account))
        return parse(CallbackName, response, "the callback deregistration answer")

    # --- devices ----------------------------------------------------------------------------------

    def iter_devices(self, request):
        """Every device matching a DeviceListRequest, page after page (read-only)."""
        request = request.model_copy()
        while True:
            response = self.call("POST", "/devices/actions/list", "list devices of account %r" % request.account_name, body=request.wire())
            page = parse(DeviceList, response, "the device list answer")
            yield from page.devices
            if not page.has_more_data:
                return
            if not page.last_seen_device_id:
                raise ThingSpaceError("The device list answer says more data waits but gives no lastSeenDeviceId", status=response.status_code)
            request.last_seen_device_id = page.last_seen_device_id


def _seg(value):
    """One URL path segment (account names keep their leading zeros and dashes)."""
    return quote(str(value), safe="")


def _m2m_path(location):
    """The path under /api/m2m/v1 that a Location header points to. Only path and query are taken, so the
    tokens never go to another host; a vendor-relative ``/sms/...`` and a full ``/api/m2m/v1/sms/...`` both work."""
    parts = urlsplit(location)
    path = parts.path
    if path.startswith(M2M + "/"):
        path = path[len(M2M):]
    return path + ("?" + parts.query if parts.query else "")
