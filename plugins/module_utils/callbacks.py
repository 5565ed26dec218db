# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback listener registrations: compare what is registered with what is wanted, change only what differs.

Used by vz_callback (any service) and vz_sms_start_callbacks (EnhancedConnectivityService). A registration
is replaced by registering the service again. Passwords never appear in a diff.
"""

from __future__ import annotations

from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError

# Service names the API documents for callback listeners.
SERVICE_NAMES = (
    "AlertService",
    "CarrierService",
    "DevicePRLInformation",
    "DeviceProfileService",
    "DeviceSMSMessages",
    "DeviceService",
    "DeviceSuspensionStatus",
    "DeviceUsage",
    "DiagnosticsService",
    "EnhancedConnectivityService",
    "ExternalProvisioningChanges",
    "PromoChanges",
    "ResumeTrackingNotification",
    "SMSDeliveryConfirmation",
    "StateService",
    "SubscriptionNotificationService",
)
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
        client.register_callback(account, service, url, username, password)
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
