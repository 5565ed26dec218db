# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback listener registrations: compare what is registered with what is wanted, change only what differs.

Used by vz_callback (any service) and vz_sms_start_callbacks (EnhancedConnectivityService). A registration
is replaced by registering the service again. Passwords never appear in a diff.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.loopback import is_loopback

# Service names the API documents for callback listeners (sources: tests/vendor_rules.yml).
SERVICE_NAMES = (
    "AlertService",
    "CarrierService",
    "DevicePRLInformation",
    "DeviceProfileService",
    "DeviceService",
    "DeviceSuspensionStatus",
    "DeviceUsage",
    "EnhancedConnectivityService",
    "ExternalProvisioningChanges",
    "NiddService",
    "PromoChanges",
    "ResumeTrackingNotification",
    "SMSDeliveryConfirmation",
    "StateService",
)
# The ports ThingSpace accepts in a listener URL.
LISTENER_PORTS = frozenset([80, 443, *range(9001, 9007), *range(50551, 50560), *range(28200, 28221)])
SMS_SERVICE = "EnhancedConnectivityService"
_HIDDEN = "********"


def current_listener(client, account, service):
    for listener in client.list_callbacks(account):
        if listener.service_name == service:
            return listener
    return None


def _view(url, username, password):
    """What a diff shows of a registration."""
    return {"url": url, "username": username, "password": _HIDDEN if password else None}


def port_warning(url):
    """A warning when ``url``'s port is not one ThingSpace accepts for listeners, else None. Only a warning: a
    local emulator takes any port."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        port = None
    if port in LISTENER_PORTS:
        return None
    return ("callback_url %s: ThingSpace accepts listener URLs only on the ports 80, 443, 9001-9006, 50551-50559 and 28200-28220; "
            "it will refuse this one" % url)


def listener_warnings(url, password):
    """What to warn of when registering a listener at ``url``: a port ThingSpace refuses, plain http with a password to
    a host that is not loopback (ThingSpace puts the password in every callback body)."""
    warnings = [port_warning(url)]
    parts = urlsplit(url)
    if password and parts.scheme.lower() == "http" and not is_loopback(parts.hostname):
        warnings.append("callback_url %s is plain http to a host that is not loopback and callback_password is set: ThingSpace sends the "
                        "listener's username and password in clear in the body of every callback; use an https URL" % url)
    return [warning for warning in warnings if warning]


def ensure_listener(client, account, service, url, username=None, password=None, check_mode=False):
    """Register ``service`` for ``account`` unless the same registration exists; (changed, diff).

    A password is compared only where the API lists it; where it does not, a registration with the same URL
    and username counts as unchanged."""
    current = current_listener(client, account, service)
    before = _view(current.url, current.username, current.password) if current else {}
    after = _view(url, username, password)
    same = (
        current is not None
        and current.url == url
        and (current.username or None) == (username or None)
        and (current.password is None or (current.password or None) == (password or None))
    )
    if same:
        return False, {"before": before, "after": before}
    if not check_mode:
        try:
            client.register_callback(account, service, url, username, password)
        except ThingSpaceError as error:
            if error.status == 400 and port_warning(url):
                raise ThingSpaceError("%s; %s" % (error.message, port_warning(url)), status=error.status, error_code=error.error_code,
                                      error_message=error.error_message) from None
            if current is None and error.status == 400:
                raise ThingSpaceError(
                    "%s. GET /callbacks lists no %s listener for account %r, so one registered through the ThingSpace portal or "
                    "the SOAP API may hold the service: such a listener is not listed and cannot be replaced through this API. "
                    "Remove it in the portal (or with the SOAP UnregisterCallback), then run this again" % (error.message, service, account),
                    status=error.status, error_code=error.error_code, error_message=error.error_message,
                ) from None
            raise
    if current is not None and current.password is not None and current.password != password and password:
        after["password"] = _HIDDEN + " (changed)"
    return True, {"before": before, "after": after}


def remove_listener(client, account, service, check_mode=False):
    """Deregister ``service`` for ``account`` when registered; (changed, diff)."""
    current = current_listener(client, account, service)
    if current is None:
        return False, {"before": {}, "after": {}}
    if not check_mode:
        try:
            client.delete_callback(account, service)
        except ThingSpaceError:
            # A repeated DELETE whose first answer was lost is refused although the listener is gone.
            if current_listener(client, account, service) is not None:
                raise
    return True, {"before": _view(current.url, current.username, current.password), "after": {}}
