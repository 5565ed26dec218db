"""OAuth bearer tokens, M2M session tokens and the login lockout, as the service applies them."""

import base64
import re
import secrets
import threading
import time
import uuid
from typing import Callable, Optional
from urllib.parse import parse_qs

from . import errors
from .persistence import Lockout, StoredAccessToken, StoredSession
from .wire import TokenResponse

LOCKOUT_AFTER = 5
SCOPE = "am_application_scope default"
UUID_FORM = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
MISSING_BEARER = 'Required OAuth credentials not provided. Make sure your API invocation call has a header: "Authorization: Bearer ACCESS_TOKEN"'
MISSING_BASIC = 'Required OAuth credentials not provided. Make sure your API invocation call has a header: "Authorization: Basic ACCESS_TOKEN"'
INVALID_BEARER = "Access failure for API: /m2m/v1, version: v1. Make sure you have given the correct access token"


class Session:
    __slots__ = ("last_used", "username")

    def __init__(self, username: str, last_used: float):
        self.username = username
        self.last_used = last_used


class TokenStore:
    def __init__(self, fleet, config, clock: Callable[[], float] = time.time):
        self.fleet = fleet
        self.config = config
        self.clock = clock  # epoch seconds, for token lifetimes
        self.lock = threading.Lock()
        self.access: dict = {}  # token -> expiry (epoch seconds)
        self.sessions: dict = {}  # token -> Session
        self.failures: dict = {}  # username -> consecutive failed logins
        self.locked: set = set()

    def clear(self) -> None:
        with self.lock:
            self.access.clear()
            self.sessions.clear()
            self.failures.clear()
            self.locked.clear()

    # ---- OAuth --------------------------------------------------------------------------------

    def issue_access_token(self, authorization: Optional[str], form: bytes) -> TokenResponse:
        scheme, _space, credentials = (authorization or "").partition(" ")
        if scheme.lower() != "basic" or not credentials.strip():
            raise errors.gateway_fault(401, "900902", "Missing Credentials", MISSING_BASIC)
        try:
            client_id, _colon, secret = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")
        except ValueError:
            client_id, secret = "", None
        if self.fleet.clients.get(client_id) != secret:
            raise errors.oauth_error(401, "invalid_client", "Client authentication failed: unknown client or wrong secret.")
        grant = parse_qs(form.decode("utf-8", "replace")).get("grant_type", [""])[0]
        if not grant:
            raise errors.oauth_error(400, "invalid_request", "Missing grant_type parameter value")
        if grant != "client_credentials":
            raise errors.oauth_error(400, "unsupported_grant_type", f"Unsupported grant_type value {grant!r}")
        token = str(uuid.uuid4())
        ttl = self.config.access_token_ttl
        with self.lock:
            self.access[token] = self.clock() + ttl
        return TokenResponse(access_token=token, expires_in=int(ttl), scope=SCOPE)

    def check_bearer(self, authorization: Optional[str]) -> None:
        scheme, _space, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise errors.gateway_fault(401, "900902", "Missing Credentials", MISSING_BEARER)
        with self.lock:
            expiry = self.access.get(token)
            if expiry is not None and expiry <= self.clock():
                del self.access[token]
                expiry = None
        if expiry is None:
            raise errors.gateway_fault(401, "900901", "Invalid Credentials", INVALID_BEARER)

    # ---- M2M session --------------------------------------------------------------------------

    def login(self, username: Optional[str], password: Optional[str]) -> str:
        with self.lock:
            if username in self.locked:
                raise errors.bad_request(errors.LOGIN_LOCKED, f"User {username} is locked after {LOCKOUT_AFTER} failed logins; contact support.")
            user = self.fleet.users.get(username)
            if user is None or not secrets.compare_digest(user.password.encode(), (password or "").encode()):
                if username:
                    self.failures[username] = self.failures.get(username, 0) + 1
                    if self.failures[username] >= LOCKOUT_AFTER:
                        self.locked.add(username)
                raise errors.bad_request(errors.LOGIN_FAILED, "Login failed: unknown username or wrong password.")
            self.failures.pop(username, None)
            token = str(uuid.uuid4())
            self.sessions[token] = Session(username, self.clock())
            return token

    def check_session(self, header: Optional[str]) -> str:
        """The username of a valid session token; refreshes the token's idle timer."""
        if not header:
            raise errors.bad_request(errors.SESSION_INVALID, "The VZ-M2M-Token header is missing.")
        if not UUID_FORM.fullmatch(header.strip()):
            raise errors.bad_request(errors.SESSION_FORMAT, "The session token is not in the expected format.")
        now = self.clock()
        with self.lock:
            session = self.sessions.get(header.strip())
            if session is None:
                raise errors.bad_request(errors.SESSION_INVALID, "The session token is not valid.")
            if now - session.last_used > self.config.session_idle_ttl:
                del self.sessions[header.strip()]
                raise errors.bad_request(errors.SESSION_EXPIRED, "The session token has expired.")
            session.last_used = now
            return session.username

    def logout(self, token: str) -> None:
        with self.lock:
            self.sessions.pop(token.strip(), None)

    # ---- admin --------------------------------------------------------------------------------

    def expire(self, kind: str) -> int:
        """Make every current token of the kind ("access", "session" or "all") expired now."""
        count = 0
        with self.lock:
            if kind in ("access", "all"):
                for token in self.access:
                    self.access[token] = 0.0
                count += len(self.access)
            if kind in ("session", "all"):
                for session in self.sessions.values():
                    session.last_used = 0.0
                count += len(self.sessions)
        return count

    def unlock(self, username: str) -> None:
        with self.lock:
            self.locked.discard(username)
            self.failures.pop(username, None)

    # ---- persistence --------------------------------------------------------------------------

    def snapshot(self) -> dict:
        with self.lock:
            users = set(self.failures) | self.locked
            return {
                "accessTokens": [StoredAccessToken(token=token, expiresAt=expiry) for token, expiry in self.access.items()],
                "sessions": [StoredSession(token=token, username=s.username, lastUsed=s.last_used) for token, s in self.sessions.items()],
                "lockouts": [Lockout(username=name, failures=self.failures.get(name, 0), locked=name in self.locked) for name in sorted(users)],
            }

    def restore(self, state) -> None:
        with self.lock:
            self.access = {item.token: item.expiresAt for item in state.accessTokens}
            self.sessions = {item.token: Session(item.username, item.lastUsed) for item in state.sessions if item.username in self.fleet.users}
            self.failures = {item.username: item.failures for item in state.lockouts if item.failures}
            self.locked = {item.username for item in state.lockouts if item.locked}
