# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one ThingSpace client: the API calls the modules use, on top of the transport (HTTP, retries) and the
authenticator (tokens).

Building a client makes no request and imports neither requests nor pydantic: the transport and the wire
models are loaded by the first call, so a task that makes none (a re-run with nothing to send, bad input)
does not pay for them.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from urllib.parse import quote, urlsplit

from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Authenticator
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError

M2M = "/api/m2m/v1"


class ThingSpaceClient:
    """Calls ThingSpace on behalf of one task. ``session`` and ``sleep`` are injectable for tests."""

    def __init__(self, api_url, credentials, token_cache=None, timeout=30.0, retries=4, validate_certs=True, session=None, sleep=time.sleep):
        self.api_url = api_url.rstrip("/")
        self._settings = dict(timeout=timeout, retries=retries, validate_certs=validate_certs, session=session, sleep=sleep)
        self._credentials = credentials
        self._token_cache = token_cache
        self._transport = None
        self._auth = None

    def _connect(self):
        """The transport and the authenticator, made on the first call."""
        if self._transport is None:
            from ansible_collections.thingspace.m2m.plugins.module_utils.transport import Transport

            self._transport = Transport(self.api_url, **self._settings)
            self._auth = Authenticator(self.api_url, self._credentials, self._transport, cache=self._token_cache)
        return self._transport, self._auth

    def call(self, method, path, what, body=None, write=False):
        """An authenticated M2M call. A rejected token is replaced and the call repeated, at most once per token
        kind (both cached tokens may be stale: revoked, or the service restarted)."""
        transport, auth = self._connect()
        renewed = set()
        while True:
            with _before_the_call():
                headers = auth.headers()
            response = transport.send(method, M2M + path, write=write, what=what, headers=headers, json=body)
            if response.status_code < 400:
                return response
            error = ThingSpaceError.from_response(response, what)
            kind = auth.rejected_token(error)
            if kind is None or kind in renewed:
                raise error
            with _before_the_call():
                auth.renew(kind, headers)
            renewed.add(kind)

    # --- SMS --------------------------------------------------------------------------------------

    def send_sms(self, request):
        """POST /sms; the request id. An answer that cannot be read after a 200 is ambiguous: it was accepted."""
        from ansible_collections.thingspace.m2m.plugins.module_utils.models import RequestId, parse

        response = self.call("POST", "/sms", "send SMS", body=request.wire(), write=True)
        try:
            return parse(RequestId, response, "the send SMS answer").request_id
        except ThingSpaceError as error:
            raise ThingSpaceError(error.message, status=error.status, ambiguous=True)

    def start_callbacks(self, account):
        from ansible_collections.thingspace.m2m.plugins.module_utils.models import Success, parse

        response = self.call("PUT", "/sms/%s/startCallbacks" % _seg(account), "start SMS callbacks for account %r" % account)
        return parse(Success, response, "the startCallbacks answer").success

    def sms_history(self, account, next_path=None):
        """One block of queued mobile-originated SMS: (messages, path of the next block or None).

        Asking for the next block acknowledges this one; a last block (HTTP 200) is acknowledged once returned.
        A ``next`` read changes the queue, so it follows the rules of a write: never repeated once it may have
        reached the service (its token is single-use)."""
        from ansible_collections.thingspace.m2m.plugins.module_utils.models import SmsHistory, parse

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
        from ansible_collections.thingspace.m2m.plugins.module_utils.models import CallbackListeners, parse

        response = self.call("GET", "/callbacks/%s" % _seg(account), "list callback listeners of account %r" % account)
        return parse(CallbackListeners, response, "the callback list answer").root

    def register_callback(self, account, service_name, url, username=None, password=None):
        from ansible_collections.thingspace.m2m.plugins.module_utils.models import CallbackName, CallbackRegistration, parse

        body = CallbackRegistration(name=service_name, url=url, username=username, password=password).wire()
        response = self.call("POST", "/callbacks/%s" % _seg(account), "register the %s listener of account %r" % (service_name, account), body=body)
        return parse(CallbackName, response, "the callback registration answer")

    def delete_callback(self, account, service_name):
        from ansible_collections.thingspace.m2m.plugins.module_utils.models import CallbackName, parse

        path = "/callbacks/%s/name/%s" % (_seg(account), _seg(service_name))
        response = self.call("DELETE", path, "deregister the %s listener of account %r" % (service_name, account))
        return parse(CallbackName, response, "the callback deregistration answer")

    # --- devices ----------------------------------------------------------------------------------

    def iter_devices(self, request):
        """Every device matching a DeviceListRequest, page after page (read-only)."""
        for page in self.iter_device_pages(request):
            yield from page.devices

    def iter_device_pages(self, request, states_only=False):
        """The pages (models.DeviceList: ``devices``, ``has_more_data``) of the devices matching a DeviceListRequest,
        each read when the one before it is done with: a caller that stops after the first page makes one request.
        ``states_only``: models.DeviceStateList pages, whose devices have only their state and paging cursor."""
        from ansible_collections.thingspace.m2m.plugins.module_utils.models import DeviceList, DeviceStateList, parse

        request = request.model_copy()
        while True:
            response = self.call("POST", "/devices/actions/list", "list devices of account %r" % request.account_name, body=request.wire())
            page = parse(DeviceStateList if states_only else DeviceList, response, "the device list answer")
            yield page
            if not page.has_more_data:
                return
            # The next page starts after the largest internal device id seen (docs/design.md, "Decisions").
            seen = [device.internal_id() for device in page.devices]
            if not seen or None in seen:
                raise ThingSpaceError("The device list answer says more data waits but a device has no DeviceId extended attribute "
                                      "to continue from", status=response.status_code)
            if request.largest_device_id_seen is not None and max(seen) <= request.largest_device_id_seen:
                raise ThingSpaceError("The device list answer repeats devices already read (DeviceId %d); stopped" % max(seen),
                                      status=response.status_code)
            request.largest_device_id_seen = max(seen)


@contextmanager
def _before_the_call():
    """Getting tokens happens before the call (or after the service refused the token, so the call was not
    processed): however unclear a login's outcome, the call itself was certainly not made."""
    try:
        yield
    except ThingSpaceError as error:
        raise error.not_sent() from None


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
