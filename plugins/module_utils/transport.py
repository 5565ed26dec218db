# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP for the client: one requests session, the retry rules, and what an unanswered write means.

Reads and other repeatable calls (GET/PUT/DELETE, the device list POST) retry on connection errors, 429 and
502/503/504 with jittered backoff, honouring Retry-After. Writes (POST /sms, logins, a history ``next`` read)
retry only where the request certainly was not processed: connection never established, 429, 503 with
Retry-After. A 4xx answer proves a write was refused, not processed. A 5xx answer (but 503 with Retry-After),
no answer after the request was sent, or a TLS error other than a refused certificate (it may come while the
answer is read) leaves a write ambiguous, since a server can fail after processing:
ThingSpaceError with ``ambiguous=True``; the caller records it and never repeats it on its own
(docs/design.md, "Retries").

Redirects are not followed: requests drops only ``Authorization`` on the way to another host, not the
``VZ-M2M-Token``, so a 3xx fails the call naming its Location. ``validate_certs`` goes with every request,
because requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE override a session's ``verify``.
"""

from __future__ import annotations

import random
import ssl
import time

try:
    import requests
    from urllib3.exceptions import NewConnectionError
except ImportError:
    pass  # ThingSpaceModule checks for requests when it starts, before anything imports this file.

from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError

RETRY_STATUSES = (429, 502, 503, 504)
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
# A Retry-After longer than this is not waited for: the call fails and says so.
MAX_RETRY_AFTER = 300.0
USER_AGENT = "thingspace.m2m-ansible"


def _retry_after(response):
    """Seconds from a numeric Retry-After header, or None."""
    try:
        return max(0.0, float(response.headers.get("Retry-After")))
    except (TypeError, ValueError):
        return None


def _certificate_refused(exc):
    """True when a TLS error is the server's certificate failing verification, which happens in the handshake,
    before any byte of the request. Any other TLS error may come while the answer is read."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending.extend(link for link in linked if isinstance(link, BaseException))
    return False


def _never_sent(exc):
    """True when the connection failed before any byte of the request was sent."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


class Transport:
    """Sends requests to one API URL with the retry rules above. ``session`` and ``sleep`` are injectable for tests."""

    def __init__(self, api_url, timeout=30.0, retries=4, validate_certs=True, session=None, sleep=time.sleep):
        self.api_url = api_url
        self.timeout = timeout
        self.retries = retries
        self._sleep = sleep
        self._verify = validate_certs
        self._http = session or requests.Session()
        self._http.headers["User-Agent"] = USER_AGENT

    def send(self, method, path, write, what, headers=None, **kwargs):
        """One call; returns the final response. ``what`` names the action in error messages ("send SMS")."""
        url = self.api_url + path
        attempt = 0
        while True:
            delay = None
            try:
                response = self._http.request(method, url, headers=headers, timeout=self.timeout, verify=self._verify, allow_redirects=False,
                                              **kwargs)
            except requests.exceptions.SSLError as exc:
                if write and not _certificate_refused(exc):
                    raise ThingSpaceError("Failed to %s: TLS error talking to %s, perhaps after the request was sent: %s; it may have been processed"
                                          % (what, self.api_url, exc), ambiguous=True)
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
                if 300 <= status < 400:
                    raise ThingSpaceError("Failed to %s: HTTP %d redirect to %s, not followed (it would take the tokens along); if the API "
                                          "moved, set api_url to its new address" % (what, status, response.headers.get("Location")), status=status)
                delay = _retry_after(response)
                if write and status >= 500 and not (status == 503 and delay is not None):
                    raise ThingSpaceError.from_response(response, what, hint="the request may have been processed", ambiguous=True)
                if status not in RETRY_STATUSES:
                    return response
                if (delay or 0) > MAX_RETRY_AFTER:
                    hint = "the service asked to retry after %g s, longer than the %g s a task waits: re-run later" % (delay, MAX_RETRY_AFTER)
                    raise ThingSpaceError.from_response(response, what, hint=hint)
                if attempt >= self.retries:
                    raise ThingSpaceError.from_response(response, what, hint="gave up after %d attempts" % (attempt + 1))
            if delay is None:
                delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)
            self._sleep(delay)
            attempt += 1
