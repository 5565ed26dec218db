# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception type of the collection: every failure reaches the modules as a ThingSpaceError.

This file also reads the three error shapes the API answers with (plain JSON, no models), so that it
depends on nothing else of the collection."""

from __future__ import annotations

# The API gateway's fault code for a bearer token that is invalid or expired.
GATEWAY_INVALID_TOKEN = "900901"
# The API gateway's fault code for a path (or method) it has no API for: a wrong api_url.
GATEWAY_NO_RESOURCE = "900906"


class ThingSpaceError(Exception):
    """A failure with what the API said, if it said anything.

    ``status`` is the HTTP status, ``error_code``/``error_message`` the API's ``errorCode``/``errorMessage``
    (or the gateway fault code and message). ``ambiguous`` is true when a write may have reached the
    service although no answer arrived: the caller must not repeat it blindly.
    """

    def __init__(self, message, status=None, error_code=None, error_message=None, ambiguous=False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.error_message = error_message
        self.ambiguous = ambiguous

    def __str__(self):
        return self.message

    def code_is(self, suffix):
        """True when the error code ends with ``suffix``, with or without a service prefix
        (``UnifiedWebService.REQUEST_FAILED.AccountNotFound`` matches ``REQUEST_FAILED.AccountNotFound``)."""
        code = self.error_code or ""
        return code == suffix or code.endswith("." + suffix)

    @classmethod
    def from_response(cls, response, action, hint=None, ambiguous=False):
        """Map an error answer to a ThingSpaceError. ``action`` says what failed ("send SMS"), ``hint`` what
        to do about it."""
        try:
            body = response.json()
        except ValueError:
            body = None
        code, detail = error_fields(body)
        if code is None:
            detail = (response.text or "").strip()[:200] or response.reason
        message = "Failed to %s: HTTP %d" % (action, response.status_code)
        if code:
            message += " %s" % code
        if detail:
            message += ": %s" % detail
        if hint:
            message += "; %s" % hint
        return cls(message, status=response.status_code, error_code=code, error_message=detail, ambiguous=ambiguous)

    def not_sent(self):
        """This error, for a call that was certainly not sent: never ambiguous."""
        return ThingSpaceError(self.message, status=self.status, error_code=self.error_code, error_message=self.error_message)

    def to_result(self):
        """The fields a module puts into fail_json (those the API gave)."""
        fields = {"status": self.status, "error_code": self.error_code, "error_message": self.error_message}
        return {name: value for name, value in fields.items() if value is not None}


def error_fields(body):
    """(code, message) of an error answer's JSON body; (None, None) when it has none of the three shapes:
    the gateway's ``{"fault": {"code", "message" or "description"}}``, the M2M ``{"errorCode", "errorMessage"}``
    and OAuth's ``{"error", "error_description"}``."""
    if not isinstance(body, dict):
        return None, None
    fault = body.get("fault")
    # The gateway's fault code comes as a string or as a number (900901).
    code = fault.get("code") if isinstance(fault, dict) else None
    if isinstance(code, int) and not isinstance(code, bool):
        code = str(code)
    if _text(code) is not None:
        return code, _text(fault.get("message")) or _text(fault.get("description"))
    for code_name, message_name in (("errorCode", "errorMessage"), ("error", "error_description")):
        if _text(body.get(code_name)) is not None:
            return body[code_name], _text(body.get(message_name))
    return None, None


def _text(value):
    return value if isinstance(value, str) else None
