# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Authentication: the two tokens every M2M call carries, and the cache that lets a play log in once.

ThingSpace wants an OAuth bearer token (client credentials, valid one hour) and a VZ-M2M session token
(user login, valid while used, expires after 20 minutes idle). Tokens come from, in this order: the
``access_token``/``session_token`` options, the token cache, a login. A refused login is never repeated:
five consecutive failures lock the user's account. The cache finds tokens by a salted PBKDF2 hash of the credentials,
so a changed password logs in again, and remembers a refused login (by that hash) for a while, so the other tasks,
hosts or loop items of a play do not try the same credentials again. The hash is derived once per play: the derived
keys are remembered in memory that ansible-playbook shares with the workers it forks (``DerivedKeys``), never on disk.
"""

from __future__ import annotations

import binascii
import fcntl
import hashlib
import hmac
import json
import mmap
import os
import tempfile
import time
from collections import namedtuple
from contextlib import contextmanager

from ansible_collections.thingspace.m2m.plugins.module_utils.env import env_hint
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import GATEWAY_INVALID_TOKEN, GATEWAY_NO_RESOURCE, ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.private_files import check_private, private_file

TOKEN_PATH = "/api/ts/v1/oauth2/token"
LOGIN_PATH = "/api/m2m/v1/session/login"
LOCKOUT_HINT = (
    "not retried, because five consecutive failed logins lock the account until Verizon support unlocks it; check username and password"
)
# How long a refused password is not tried again (through the token cache).
REFUSED_TTL = 900
# A cached bearer token this close to its expiry is replaced before use.
ACCESS_MARGIN = 60

Credentials = namedtuple("Credentials", "client_id client_secret username password access_token session_token")


def credentials_problem(credentials):
    """Why these credentials cannot authenticate (naming the options and env vars), or None."""
    missing = []
    if not credentials.access_token and not (credentials.client_id and credentials.client_secret):
        missing.append("an OAuth token needs client_id and client_secret %s or access_token %s"
                       % (env_hint("client_id", "client_secret"), env_hint("access_token")))
    if not credentials.session_token and not (credentials.username and credentials.password):
        missing.append("a session token needs username and password %s or session_token %s"
                       % (env_hint("username", "password"), env_hint("session_token")))
    return "; ".join(missing) or None


class DerivedKeys:
    """The token cache keys derived so far (salt and credentials → PBKDF2 hash), in anonymous shared memory: the processes
    forked after it was made (ansible-playbook's workers, from the main process that imports this file with the action
    plugin) read and add to the same slots, so a play derives each key once instead of once per task. Nothing is written
    to disk: a token cache file reveals what it did before, and the memory is that of processes that hold the credentials
    anyway (docs/design.md, "Decisions, and why").

    A slot holds a tag (SHA-256 of salt and credentials), the key and a checksum of both; a slot written by two processes
    at once, or taken by another key, fails its tag or checksum and reads as not derived, so it is derived again."""

    SLOTS = 64
    _PART = hashlib.sha256().digest_size
    _SLOT = 3 * _PART

    def __init__(self):
        self._memory = mmap.mmap(-1, self.SLOTS * self._SLOT)

    def get(self, salt, fields):
        """The key derived for ``fields`` with ``salt``, or None."""
        tag, start = self._slot(salt, fields)
        slot = self._memory[start:start + self._SLOT]
        key, check = slot[self._PART:2 * self._PART], slot[2 * self._PART:]
        if slot[:self._PART] != tag or not hmac.compare_digest(check, hashlib.sha256(tag + key).digest()):
            return None
        return binascii.hexlify(key).decode()

    def put(self, salt, fields, key):
        tag, start = self._slot(salt, fields)
        raw = binascii.unhexlify(key)
        self._memory[start:start + self._SLOT] = tag + raw + hashlib.sha256(tag + raw).digest()

    def _slot(self, salt, fields):
        tag = hashlib.sha256(json.dumps([salt, fields]).encode("utf-8")).digest()
        return tag, tag[0] % self.SLOTS * self._SLOT


# Made when this file is imported: in ansible-playbook, by the main process before it forks a task's worker.
DERIVED_KEYS = DerivedKeys()


class TokenCache:
    """Tokens shared by the tasks of a play: a 0600 JSON file. An entry is found by a salted PBKDF2 hash of the API URL
    and all four credentials (``key``), so a changed password or client secret never finds the tokens of the old one;
    the file holds no credential. A refused login is remembered per user (``refusal``) with the key it was refused for.

    ``locked()`` serialises logins between processes (forks, parallel plays), so concurrent tasks wait for
    one login instead of each logging in. Files of another version (version 1 keyed entries by API URL, client id
    and user alone) are read as empty and replaced on the next write."""

    VERSION = 2

    def __init__(self, path):
        self.path = path
        # The salt of a file that has none yet, drawn once so that key() and the write that follows agree.
        self._new_salt = binascii.hexlify(os.urandom(16)).decode()

    def key(self, api_url, credentials):
        """The entry of ``credentials`` at ``api_url``: a salted PBKDF2 hash, never a credential; hashed once per salt in
        this process and the processes that share its DERIVED_KEYS."""
        secrets = (api_url, credentials.client_id, credentials.client_secret, credentials.username, credentials.password)
        fields = json.dumps([field or "" for field in secrets])
        salt = self._load()["salt"]
        key = DERIVED_KEYS.get(salt, fields)
        if key is None:
            key = _password_hash(fields, salt)
            DERIVED_KEYS.put(salt, fields, key)
        return key

    def hash_ahead(self, api_url, credentials):
        """key() before taking the lock, so that parallel tasks do not wait for each other's hash (once the file exists)."""
        if os.path.isfile(self.path):
            self.key(api_url, credentials)

    @staticmethod
    def user(api_url, credentials):
        """Whose refusal is remembered: the API URL, client id and user (no secret)."""
        ident = "\n".join((api_url, credentials.client_id or "", credentials.username or ""))
        return hashlib.sha256(ident.encode("utf-8")).hexdigest()

    @contextmanager
    def locked(self):
        lock_path = self.path + ".lock"
        private_file(lock_path)
        with open(lock_path, "r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def get(self, key):
        return dict(self._load()["entries"].get(key) or {})

    def put(self, key, entry):
        data = self._load()
        if data["entries"].get(key) != entry:
            data["entries"][key] = entry
            self._write(data)

    def refusal(self, user):
        """The last refused login of ``user`` ({key, at}) not followed by a successful one, or None."""
        return self._load()["refused"].get(user)

    def set_refusal(self, user, refusal):
        data = self._load()
        if data["refused"].get(user) != refusal:
            if refusal:
                data["refused"][user] = refusal
            else:
                data["refused"].pop(user, None)
            self._write(data)

    def _write(self, data):
        private_file(self.path)
        handle, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), prefix=".tokens-")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(dict(data, version=self.VERSION), out)
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise

    def _load(self):
        check_private(self.path)
        try:
            with open(self.path) as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            data = None
        if not (isinstance(data, dict) and data.get("version") == self.VERSION and isinstance(data.get("salt"), str)):
            data = {}
        loaded = {"salt": data.get("salt") or self._new_salt}
        for part in ("entries", "refused"):
            loaded[part] = data[part] if isinstance(data.get(part), dict) else {}
        return loaded


class _NoCache:
    """Stand-in when ``token_cache: false``: every task logs in for itself."""

    def key(self, api_url, credentials):
        return None

    user = key

    def hash_ahead(self, api_url, credentials):
        pass

    @contextmanager
    def locked(self):
        yield

    def get(self, key):
        return {}

    def put(self, key, entry):
        pass

    def refusal(self, user):
        return None

    def set_refusal(self, user, refusal):
        pass


class Authenticator:
    """Holds the current tokens and gets new ones through ``transport`` (a Transport); logins follow its rules for
    writes (nothing that may have reached the service is repeated)."""

    def __init__(self, api_url, credentials, transport, cache=None, clock=time.time):
        self._credentials = credentials
        self._transport = transport
        self._cache = cache or _NoCache()
        self._api_url = api_url
        self._clock = clock
        self.access_token = credentials.access_token
        self.access_expires = None
        self.session_token = credentials.session_token

    def headers(self):
        """Headers of an M2M call, getting whichever token is missing or about to expire."""
        if not self.access_token or self._expiring() or not self.session_token:
            self._cache.hash_ahead(self._api_url, self._credentials)
            with self._cache.locked():
                entry = self._cache.get(self._key())
                if (not self.access_token or self._expiring()) and not self._adopt_access(entry):
                    self._oauth(entry)
                if not self.session_token:
                    self.session_token = entry.get("session_token") or self._login(entry)
                self._cache.put(self._key(), entry)
        return {
            "Authorization": "Bearer %s" % self.access_token,
            "VZ-M2M-Token": self.session_token,
            "Content-Type": "application/json",
        }

    @staticmethod
    def rejected_token(error):
        """Which token ``error`` rejects: "access", "session", or None when it is not about a token."""
        if error.status == 401 and error.error_code == GATEWAY_INVALID_TOKEN:
            return "access"
        if any(error.code_is(code) for code in ("SessionToken.Expired", "SessionToken.Format", "SessionToken.Invalid")):
            return "session"
        return None

    def renew(self, kind, used):
        """Replace the rejected token of ``kind``. ``used`` are the headers of the rejected call: when the cache
        already holds a newer token (another task renewed it meanwhile) that one is taken instead of a new login."""
        self._cache.hash_ahead(self._api_url, self._credentials)
        with self._cache.locked():
            entry = self._cache.get(self._key())
            if kind == "access":
                if entry.get("access_token") in (None, used["Authorization"][len("Bearer "):]) or not self._adopt_access(entry):
                    self._oauth(entry)
            else:
                cached = entry.get("session_token")
                self.session_token = cached if cached and cached != used["VZ-M2M-Token"] else self._login(entry)
            self._cache.put(self._key(), entry)

    def _key(self):
        return self._cache.key(self._api_url, self._credentials)

    def _api_url_hint(self, path):
        return "check api_url: %s has no %s" % (self._transport.api_url, path)

    def _post(self, path, **kwargs):
        return self._transport.send("POST", path, write=True, what="log in to ThingSpace", **kwargs)

    def _expiring(self):
        return self.access_expires is not None and self.access_expires - ACCESS_MARGIN <= self._clock()

    def _adopt_access(self, entry):
        expires = entry.get("access_expires") or 0
        if entry.get("access_token") and expires - ACCESS_MARGIN > self._clock():
            self.access_token, self.access_expires = entry["access_token"], expires
            return True
        return False

    def _oauth(self, entry):
        from ansible_collections.thingspace.m2m.plugins.module_utils.models import OAuthToken, parse

        creds = self._credentials
        _require(creds, "access token", "client_id", "client_secret", "get a new one")
        response = self._post(TOKEN_PATH, data={"grant_type": "client_credentials"}, auth=(creds.client_id, creds.client_secret),
                              headers={"Accept": "application/json"})
        if response.status_code != 200:
            action = "get an OAuth access token with client_id %r" % creds.client_id
            refused = ThingSpaceError.from_response(response, action)
            hint = self._api_url_hint(TOKEN_PATH) if _no_such_path(refused) else "check client_id and client_secret"
            raise ThingSpaceError.from_response(response, action, hint=hint)
        token = parse(OAuthToken, response, "the OAuth token answer")
        self.access_token, self.access_expires = token.access_token, self._clock() + token.expires_in
        entry.update(access_token=self.access_token, access_expires=self.access_expires)

    def _login(self, entry):
        """Log in once; a refused login raises at once and is never repeated."""
        from ansible_collections.thingspace.m2m.plugins.module_utils.models import LoginRequest, SessionToken, parse

        creds = self._credentials
        _require(creds, "session token", "username", "password", "log in again")
        user = self._cache.user(self._api_url, creds)
        refused = self._cache.refusal(user)
        if refused and refused["at"] + REFUSED_TTL > self._clock() and hmac.compare_digest(str(refused["key"]), self._key()):
            raise ThingSpaceError(
                "Not logging in as %r: ThingSpace refused this password %d s ago (another task, host or loop item) and five "
                "consecutive failed logins lock the account. Fix the password; the refusal is forgotten after %d s or with the "
                "token cache file in state_dir" % (creds.username, self._clock() - refused["at"], REFUSED_TTL)
            )
        body = LoginRequest(username=creds.username, password=creds.password).wire()
        for attempt in (1, 2):
            headers = {"Authorization": "Bearer %s" % self.access_token, "Content-Type": "application/json"}
            response = self._post(LOGIN_PATH, json=body, headers=headers)
            if response.status_code == 200:
                break
            error = ThingSpaceError.from_response(response, "log in to ThingSpace as %r" % creds.username)
            # The gateway refused the bearer token before the login was checked: that is not a failed login.
            if attempt == 1 and response.status_code == 401 and error.error_code == GATEWAY_INVALID_TOKEN and creds.client_id:
                self._oauth(entry)
                continue
            if _no_such_path(error):
                raise ThingSpaceError.from_response(response, "log in to ThingSpace as %r" % creds.username, hint=self._api_url_hint(LOGIN_PATH))
            if response.status_code == 400:
                self._cache.put(self._key(), entry)
                self._cache.set_refusal(user, {"key": self._key(), "at": self._clock()})
                raise ThingSpaceError.from_response(response, "log in to ThingSpace as %r" % creds.username, hint=LOCKOUT_HINT)
            raise error
        session = parse(SessionToken, response, "the login answer").session_token
        self._cache.set_refusal(user, None)
        entry["session_token"] = session
        return session


def _no_such_path(error):
    """True when the answer says nothing is at the path (HTTP 404/405 or the gateway's fault), so api_url is wrong."""
    return error.status in (404, 405) or error.error_code == GATEWAY_NO_RESOURCE


def _require(credentials, token, first, second, action):
    """Fail when the two options that renew ``token`` are not both set."""
    if not (getattr(credentials, first) and getattr(credentials, second)):
        raise ThingSpaceError("The %s was rejected or expired and no %s/%s is set to %s %s"
                              % (token, first, second, action, env_hint(first, second)))


def _password_hash(password, salt):
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("ascii"), 100000)
    return binascii.hexlify(digest).decode()
