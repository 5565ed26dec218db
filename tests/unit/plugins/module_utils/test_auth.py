"""Authentication against the fake API: which token and login requests are made and when (an injected clock for
early renewal and for the memory of a refused password), what the token cache shares between tasks, and the
messages a user reads when a token cannot be had."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile

import pytest

from ansible_collections.thingspace.m2m.plugins.module_utils import auth
from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Authenticator, Credentials, TokenCache, credentials_problem
from ansible_collections.thingspace.m2m.plugins.module_utils.client import ThingSpaceClient
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.models import SendSmsRequest
from ansible_collections.thingspace.m2m.plugins.module_utils.transport import Transport

from fake_api import ACCOUNT, API

CREDS = Credentials("cid", "csecret", "user", "pass", None, None)
SMS = SendSmsRequest(sms_message="hi", device_ids=[{"kind": "mdn", "id": "5551234567"}])
TOKEN_PATH, LOGIN_PATH, SMS_PATH = "/api/ts/v1/oauth2/token", "/api/m2m/v1/session/login", "/api/m2m/v1/sms"
TOKEN, LOGIN, SEND = TOKEN_PATH + "$", LOGIN_PATH + "$", SMS_PATH + "$"
# The fake's bearer tokens live an hour; one with a minute or less left is replaced before use.
LIFETIME, MARGIN = 3600, 60
REFUSED = (400, {"errorCode": "REQUEST_FAILED.UnexpectedError", "errorMessage": "Invalid credentials"})
LOCKOUT = ("Failed to log in to ThingSpace as 'user': HTTP 400 REQUEST_FAILED.UnexpectedError: Invalid credentials; not retried, because "
           "five consecutive failed logins lock the account until Verizon support unlocks it; check username and password")
BEARER_REFUSED = (401, {"fault": {"code": "900901", "message": "Invalid Credentials"}})


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def authenticator(clock, cache=None, creds=CREDS):
    return Authenticator(API, creds, Transport(API, retries=2, sleep=lambda seconds: None), cache=cache, clock=clock)


def client(cache=None, creds=CREDS):
    return ThingSpaceClient(API, creds, token_cache=cache, retries=2, sleep=lambda seconds: None)


@pytest.fixture
def cache(tmp_path):
    return TokenCache(str(tmp_path / "state" / "tokens.json"))


def requests_made(fake):
    return [(method, path) for method, path, _body in fake.calls]


def sent_to(fake, path):
    """The requests to ``path``, as prepared."""
    return [request for request, _settings in fake.sent if request.path_url.split("?")[0] == path]


# --- when tokens are requested ---------------------------------------------------------------------------------

def test_the_first_call_gets_a_token_logs_in_then_calls_with_both(fake):
    assert client().send_sms(SMS)
    assert requests_made(fake) == [("POST", TOKEN_PATH), ("POST", LOGIN_PATH), ("POST", SMS_PATH)]
    [token], [login], [call] = sent_to(fake, TOKEN_PATH), sent_to(fake, LOGIN_PATH), sent_to(fake, SMS_PATH)
    # The token request as the vendor documents it: Basic client credentials, a form, JSON asked for.
    assert token.headers["Accept"] == "application/json" and token.headers["Authorization"].startswith("Basic ")
    assert token.body == "grant_type=client_credentials"
    bearer = login.headers["Authorization"]
    assert bearer.startswith("Bearer ") and bearer[len("Bearer "):] in fake.access_tokens
    assert call.headers["Authorization"] == bearer and call.headers["VZ-M2M-Token"] in fake.sessions
    assert login.headers["Content-Type"] == call.headers["Content-Type"] == "application/json"


def test_a_given_access_token_is_used_and_only_the_login_is_made(fake):
    fake.access_tokens.add("A")
    assert client(creds=Credentials(None, None, "user", "pass", "A", None)).send_sms(SMS)
    assert requests_made(fake) == [("POST", LOGIN_PATH), ("POST", SMS_PATH)]
    assert sent_to(fake, SMS_PATH)[0].headers["Authorization"] == "Bearer A"


def test_a_given_session_token_is_used_and_only_the_bearer_token_is_requested(fake):
    fake.sessions.add("S")
    assert client(creds=Credentials("cid", "csecret", None, None, None, "S")).send_sms(SMS)
    assert requests_made(fake) == [("POST", TOKEN_PATH), ("POST", SMS_PATH)]
    assert sent_to(fake, SMS_PATH)[0].headers["VZ-M2M-Token"] == "S"


def test_a_bearer_token_about_to_expire_is_replaced_before_the_call(fake):
    clock = Clock()
    auth = authenticator(clock)
    first = auth.headers()
    clock.now += LIFETIME - MARGIN - 1
    assert auth.headers() == first and fake.count("POST", TOKEN) == 1
    clock.now += 1  # a minute left: replaced, the session kept
    renewed = auth.headers()
    assert renewed["Authorization"] != first["Authorization"] and renewed["VZ-M2M-Token"] == first["VZ-M2M-Token"]
    assert fake.count("POST", TOKEN) == 2 and fake.count("POST", LOGIN) == 1


def test_a_cached_bearer_token_is_taken_only_while_it_has_more_than_a_minute_left(fake, cache):
    clock = Clock()
    first = authenticator(clock, cache).headers()
    clock.now += LIFETIME - MARGIN - 1
    assert authenticator(clock, cache).headers() == first  # another task: both tokens from the cache
    assert fake.count("POST", TOKEN) == 1 and fake.count("POST", LOGIN) == 1
    clock.now += 1
    later = authenticator(clock, cache).headers()
    assert later["Authorization"] != first["Authorization"] and later["VZ-M2M-Token"] == first["VZ-M2M-Token"]
    assert fake.count("POST", TOKEN) == 2 and fake.count("POST", LOGIN) == 1
    assert authenticator(clock, cache).headers() == later  # the new token went into the cache
    assert fake.count("POST", TOKEN) == 2


# --- a rejected token -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["900901", 900901], ids=["string", "number"])
def test_a_login_refused_for_the_bearer_token_gets_a_new_token_and_logs_in_again(fake, cache, code):
    fake.script("POST", LOGIN, (401, {"fault": {"code": code, "message": "Invalid Credentials"}}))
    assert client(cache).send_sms(SMS)
    assert requests_made(fake) == [("POST", TOKEN_PATH), ("POST", LOGIN_PATH), ("POST", TOKEN_PATH), ("POST", LOGIN_PATH), ("POST", SMS_PATH)]
    first, second = sent_to(fake, LOGIN_PATH)
    assert first.headers["Authorization"] != second.headers["Authorization"] == sent_to(fake, SMS_PATH)[0].headers["Authorization"]
    assert client(cache).send_sms(SMS) and fake.count("POST", TOKEN) == 2  # the new token was cached


def test_a_login_refused_twice_for_the_bearer_token_fails_and_is_not_a_refused_password(fake, cache):
    fake.script("POST", LOGIN, BEARER_REFUSED, BEARER_REFUSED)
    with pytest.raises(ThingSpaceError) as caught:
        client(cache).send_sms(SMS)
    assert caught.value.message == "Failed to log in to ThingSpace as 'user': HTTP 401 900901: Invalid Credentials"
    assert not caught.value.ambiguous and fake.count("POST", TOKEN) == 2 and fake.count("POST", LOGIN) == 2
    assert client(cache).send_sms(SMS) and fake.count("POST", LOGIN) == 3  # the password is not remembered as refused


@pytest.mark.parametrize(
    "answer, message",
    [
        ((401, {"fault": {"code": "900902", "message": "Missing Credentials"}}),
         "Failed to log in to ThingSpace as 'user': HTTP 401 900902: Missing Credentials"),
        ((403, {"errorCode": "REQUEST_FAILED.Forbidden", "errorMessage": "not allowed"}),
         "Failed to log in to ThingSpace as 'user': HTTP 403 REQUEST_FAILED.Forbidden: not allowed"),
        ((400, {"fault": {"code": "900906", "message": "No matching resource found"}}),
         "Failed to log in to ThingSpace as 'user': HTTP 400 900906: No matching resource found; check api_url: %s has no %s" % (API, LOGIN_PATH)),
    ],
    ids=["gateway-other-fault", "forbidden", "no-such-path"],
)
def test_a_login_failing_otherwise_is_not_repeated_and_not_remembered(fake, cache, answer, message):
    fake.script("POST", LOGIN, answer)
    with pytest.raises(ThingSpaceError) as caught:
        client(cache).send_sms(SMS)
    assert caught.value.message == message
    assert requests_made(fake) == [("POST", TOKEN_PATH), ("POST", LOGIN_PATH)]
    assert client(cache).send_sms(SMS) and fake.count("POST", LOGIN) == 2


def test_without_client_credentials_a_login_refused_for_the_bearer_token_fails(fake):
    fake.access_tokens.add("A")
    fake.script("POST", LOGIN, BEARER_REFUSED)
    with pytest.raises(ThingSpaceError, match=r"^Failed to log in to ThingSpace as 'user': HTTP 401 900901: Invalid Credentials$"):
        client(creds=Credentials(None, None, "user", "pass", "A", None)).send_sms(SMS)
    assert requests_made(fake) == [("POST", LOGIN_PATH)]


@pytest.mark.parametrize("code", ["REQUEST_FAILED.SessionToken.Expired", "INPUT_INVALID.SessionToken.Format",
                                  "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid"])
def test_each_session_token_refusal_logs_in_again_and_repeats_the_call(fake, code):
    fake.script("POST", SEND, (400, {"errorCode": code, "errorMessage": "session"}))
    assert client().send_sms(SMS)
    assert requests_made(fake) == [("POST", TOKEN_PATH), ("POST", LOGIN_PATH), ("POST", SMS_PATH), ("POST", LOGIN_PATH), ("POST", SMS_PATH)]


def test_a_refusal_about_something_else_is_not_a_session_refusal(fake):
    fake.script("POST", SEND, (400, {"errorCode": "REQUEST_FAILED.SessionTokenExpired", "errorMessage": "x"}))
    with pytest.raises(ThingSpaceError, match=r"^Failed to send SMS: HTTP 400 REQUEST_FAILED.SessionTokenExpired: x$"):
        client().send_sms(SMS)
    assert fake.count("POST", LOGIN) == 1


def test_a_rejected_bearer_token_takes_the_newer_one_another_task_put_in_the_cache(fake, cache):
    first = client(cache)
    first.start_callbacks(ACCOUNT)
    fake.access_tokens.clear()  # revoked
    assert client(cache).start_callbacks(ACCOUNT)  # another task: the cached token is rejected, it gets a new one
    assert fake.count("POST", TOKEN) == 2
    assert first.start_callbacks(ACCOUNT)  # its token rejected, the first takes the new one from the cache
    assert fake.count("POST", TOKEN) == 2 and fake.count("POST", LOGIN) == 1
    assert fake.count("PUT", "startCallbacks") == 5  # 1, then 2 (rejected, repeated), then 2 again
    assert client(cache).start_callbacks(ACCOUNT) and fake.count("POST", TOKEN) == 2


def test_a_rejected_session_token_takes_the_newer_one_another_task_put_in_the_cache(fake, cache):
    first = client(cache)
    first.start_callbacks(ACCOUNT)
    fake.sessions.clear()  # expired
    assert client(cache).start_callbacks(ACCOUNT)
    assert fake.count("POST", LOGIN) == 2
    assert first.start_callbacks(ACCOUNT)
    assert fake.count("POST", LOGIN) == 2 and fake.count("POST", TOKEN) == 1
    assert fake.count("PUT", "startCallbacks") == 5
    assert client(cache).start_callbacks(ACCOUNT) and fake.count("POST", LOGIN) == 2


def test_an_expired_cached_bearer_token_is_not_sent(fake, cache):
    clock = Clock()
    authenticator(clock, cache).headers()
    clock.now += LIFETIME + 1
    fake.access_tokens.clear()  # expired at the service too
    calls = len(fake.calls)
    auth = authenticator(clock, cache)
    headers = auth.headers()
    assert requests_made(fake)[calls:] == [("POST", TOKEN_PATH)]
    assert headers["Authorization"][len("Bearer "):] in fake.access_tokens


# --- a refused password ---------------------------------------------------------------------------------------

def test_a_refused_password_is_tried_again_once_its_memory_expires(fake, cache):
    fake.passwords["user"] = "other"
    clock = Clock()
    with pytest.raises(ThingSpaceError, match="^%s$" % LOCKOUT.replace("(", r"\(").replace(")", r"\)")):
        authenticator(clock, cache).headers()
    clock.now += 899
    with pytest.raises(ThingSpaceError) as caught:
        authenticator(clock, cache).headers()
    assert caught.value.message == (
        "Not logging in as 'user': ThingSpace refused this password 899 s ago (another task, host or loop item) and five consecutive failed "
        "logins lock the account. Fix the password; the refusal is forgotten after 900 s or with the token cache file in state_dir")
    assert fake.count("POST", LOGIN) == 1
    clock.now += 1
    with pytest.raises(ThingSpaceError) as caught:
        authenticator(clock, cache).headers()
    assert caught.value.message == LOCKOUT and fake.count("POST", LOGIN) == 2


def test_a_successful_login_forgets_an_earlier_refusal(fake, cache):
    """Five *consecutive* failures lock the account: after a login that worked, the old password may be tried again."""
    wrong = CREDS._replace(password="wrong")
    with pytest.raises(ThingSpaceError, match="five consecutive failed logins"):
        client(cache, wrong).start_callbacks(ACCOUNT)
    assert client(cache).start_callbacks(ACCOUNT)
    fake.sessions.clear()
    with pytest.raises(ThingSpaceError) as caught:
        client(cache, wrong).start_callbacks(ACCOUNT)
    assert caught.value.message.startswith("Failed to log in to ThingSpace as 'user': HTTP 400") and fake.count("POST", LOGIN) == 3


def test_a_changed_password_logs_in_again_and_fails_once_instead_of_taking_the_cached_tokens(fake, cache):
    """The cached tokens belong to the credentials that got them: a wrong password fails as it would without a cache."""
    clock = Clock()
    right = authenticator(clock, cache).headers()
    wrong = CREDS._replace(password="wrong")
    with pytest.raises(ThingSpaceError) as caught:
        authenticator(clock, cache, wrong).headers()
    assert caught.value.message == LOCKOUT and fake.count("POST", LOGIN) == 2
    with pytest.raises(ThingSpaceError, match=r"^Not logging in as 'user': ThingSpace refused this password 0 s ago"):
        authenticator(clock, cache, wrong).headers()  # the refusal is remembered for these credentials
    assert fake.count("POST", LOGIN) == 2
    assert authenticator(clock, cache).headers() == right  # the right password still finds its tokens
    assert fake.count("POST", LOGIN) == 2 and fake.count("POST", TOKEN) == 2


def test_a_changed_client_secret_gets_its_own_bearer_token(fake, cache):
    clock = Clock()
    authenticator(clock, cache).headers()
    fake.clients["cid"] = "rotated"
    rotated = CREDS._replace(client_secret="rotated")
    assert authenticator(clock, cache, rotated).headers()
    assert fake.count("POST", TOKEN) == 2 and fake.count("POST", LOGIN) == 2
    with pytest.raises(ThingSpaceError, match="check client_id and client_secret"):
        authenticator(clock, cache, CREDS._replace(client_secret="old", password="other")).headers()


def test_the_token_cache_holds_no_credential_and_its_keys_are_salted_per_file(fake, tmp_path):
    caches = [TokenCache(str(tmp_path / name / "tokens.json")) for name in ("a", "b")]
    for one in caches:
        authenticator(Clock(), one).headers()
    texts = [pathlib.Path(one.path).read_text() for one in caches]
    for text in texts:
        assert not any(secret in text for secret in ("csecret", "pass", "cid", "user"))
    keys = [list(json.loads(text)["entries"]) for text in texts]
    assert len(keys[0]) == len(keys[1]) == 1 and keys[0] != keys[1]


def test_the_credentials_are_hashed_before_the_cache_is_locked(fake, cache, monkeypatch):
    """The hash takes about 0.1 s: under the lock, parallel tasks would wait for each other's."""
    authenticator(Clock(), cache).headers()  # the file now exists
    monkeypatch.setattr(auth, "DERIVED_KEYS", auth.DerivedKeys())  # another play's
    task = TokenCache(cache.path)  # another task's
    events, hash_of, locked = [], auth._password_hash, task.locked
    monkeypatch.setattr(auth, "_password_hash", lambda *args: events.append("hash") or hash_of(*args))
    monkeypatch.setattr(task, "locked", lambda: events.append("lock") or locked())
    assert authenticator(Clock(), task).headers()
    assert events == ["hash", "lock"] and fake.count("POST", LOGIN) == 1


def test_a_task_that_finds_its_tokens_in_the_cache_leaves_the_file_as_it_is(fake, cache):
    authenticator(Clock(), cache).headers()
    written = os.stat(cache.path)
    assert authenticator(Clock(), TokenCache(cache.path)).headers()
    found = os.stat(cache.path)
    assert (found.st_ino, found.st_mtime_ns) == (written.st_ino, written.st_mtime_ns) and fake.count("POST", LOGIN) == 1


def _in_a_fork(action):
    """``action()``'s text, run in a child process forked from this one (as ansible-playbook forks a task's worker)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(writer, action().encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return text


def _counting_hash(monkeypatch):
    hashed, hash_of = [], auth._password_hash
    monkeypatch.setattr(auth, "_password_hash", lambda *args: hashed.append(args) or hash_of(*args))
    return hashed


def test_a_key_derived_by_one_task_is_not_derived_again_by_the_next_task_of_the_play(fake, cache, monkeypatch):
    """The PBKDF2 hash is paid once per play: a task's worker is forked from ansible-playbook's main process, which
    imported auth with the action plugin; what one worker derived, the next one finds."""
    first = _in_a_fork(lambda: authenticator(Clock(), cache).headers() and TokenCache(cache.path).key(API, CREDS))
    hashed = _counting_hash(monkeypatch)
    assert _in_a_fork(lambda: "%s %d" % (TokenCache(cache.path).key(API, CREDS), len(hashed))) == first + " 0"
    assert TokenCache(cache.path).key(API, CREDS) == first and hashed == []
    with open(cache.path) as handle:
        assert list(json.load(handle)["entries"]) == [first]


def test_other_credentials_are_derived_for_themselves_and_find_no_tokens_of_the_play(fake, cache, monkeypatch):
    authenticator(Clock(), cache).headers()
    known = _in_a_fork(lambda: TokenCache(cache.path).key(API, CREDS))
    hashed = _counting_hash(monkeypatch)
    for other in (CREDS._replace(password="other"), CREDS._replace(client_secret="other"), CREDS._replace(username="other")):
        assert TokenCache(cache.path).key(API, other) not in (known, None)
    assert TokenCache(cache.path).key("https://other.example", CREDS) != known
    assert len(hashed) == 4


def test_a_slot_written_by_two_processes_at_once_reads_as_not_derived(fake, cache, monkeypatch):
    monkeypatch.setattr(auth, "DERIVED_KEYS", auth.DerivedKeys())
    authenticator(Clock(), cache).headers()
    key = TokenCache(cache.path).key(API, CREDS)
    memory = auth.DERIVED_KEYS._memory
    written = [start for start in range(0, len(memory), auth.DerivedKeys._SLOT) if any(memory[start:start + auth.DerivedKeys._SLOT])]
    assert len(written) == 1
    part = auth.DerivedKeys._PART
    memory[written[0] + part:written[0] + part + 4] = b"torn"  # a key half overwritten
    hashed = _counting_hash(monkeypatch)
    assert TokenCache(cache.path).key(API, CREDS) == key and len(hashed) == 1


def test_a_version_1_token_cache_is_ignored_and_replaced(fake, cache):
    """Version 1 found tokens by API URL, client id and user alone: its tokens may belong to another password."""
    os.makedirs(os.path.dirname(cache.path), mode=0o700)
    old_key = hashlib.sha256("\n".join((API, "cid", "user")).encode()).hexdigest()
    with open(os.open(cache.path, os.O_CREAT | os.O_WRONLY, 0o600), "w") as out:
        old_entry = {"access_token": "old-access", "access_expires": 2e9, "session_token": "old-session", "refused": {"salt": "00", "hash": "00", "at": 1e6}}
        json.dump({"version": 1, "entries": {old_key: old_entry}}, out)
    headers = authenticator(Clock(), cache).headers()
    assert "old" not in headers["Authorization"] + headers["VZ-M2M-Token"]
    assert fake.count("POST", TOKEN) == 1 and fake.count("POST", LOGIN) == 1
    with open(cache.path) as handle:
        data = json.load(handle)
    assert data["version"] == 2 and "old" not in json.dumps(data)


def test_a_token_cache_that_cannot_be_written_leaves_no_file_behind(fake, cache, monkeypatch):
    def refuse(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(auth.os, "replace", refuse)
    with pytest.raises(OSError, match="No space left on device"):
        authenticator(Clock(), cache).headers()
    assert sorted(os.listdir(os.path.dirname(cache.path))) == ["tokens.json", "tokens.json.lock"]
    assert os.path.getsize(cache.path) == 0  # created empty before the write; no temporary file holds the tokens


def test_the_token_cache_is_written_in_state_dir_not_in_the_temporary_directory(fake, cache, tmp_path, monkeypatch):
    """Written beside the cache and renamed over it: a TMPDIR that is missing, full or on another file system does not matter."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    assert authenticator(Clock(), cache).headers()
    assert sorted(os.listdir(os.path.dirname(cache.path))) == ["tokens.json", "tokens.json.lock"]
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("content", ["[]", '{"version": 1, "entries": []}', "{not json", ""])
def test_a_token_cache_holding_something_else_is_ignored(fake, cache, content):
    os.makedirs(os.path.dirname(cache.path), mode=0o700)
    with open(os.open(cache.path, os.O_CREAT | os.O_WRONLY, 0o600), "w") as out:
        out.write(content)
    assert client(cache).start_callbacks(ACCOUNT)
    assert fake.count("POST", TOKEN) == 1 and fake.count("POST", LOGIN) == 1
    assert client(cache).start_callbacks(ACCOUNT) and fake.count("POST", LOGIN) == 1  # rewritten whole


# --- what a user reads when no token can be had ----------------------------------------------------------------

def test_an_unreadable_token_answer_names_it(fake):
    fake.script("POST", TOKEN, (200, {"token": "x"}))
    with pytest.raises(ThingSpaceError) as caught:
        client().send_sms(SMS)
    assert caught.value.message.startswith("Unexpected content in the OAuth token answer (HTTP 200): ")
    assert requests_made(fake) == [("POST", TOKEN_PATH)]


def test_an_unreadable_login_answer_names_it(fake):
    fake.script("POST", LOGIN, (200, {"token": "x"}))
    with pytest.raises(ThingSpaceError) as caught:
        client().send_sms(SMS)
    assert caught.value.message.startswith("Unexpected content in the login answer (HTTP 200): ")


@pytest.mark.parametrize(
    "path, answer, message",
    [
        (TOKEN, (502, {"fault": {"code": "502", "message": "Bad Gateway"}}),
         "Failed to log in to ThingSpace: HTTP 502 502: Bad Gateway; the request may have been processed"),
        (LOGIN, (429, None, {"Retry-After": "301"}),
         "Failed to log in to ThingSpace: HTTP 429: FAKE; the service asked to retry after 301 s, longer than the 300 s a task waits: re-run later"),
    ],
    ids=["token-502", "login-429"],
)
def test_a_failed_token_request_or_login_says_logging_in_failed(fake, path, answer, message):
    fake.script("POST", path, answer)
    with pytest.raises(ThingSpaceError) as caught:
        client().send_sms(SMS)
    assert caught.value.message == message and not caught.value.ambiguous  # the call itself was not made
    assert fake.count("POST", SEND) == 0


def test_a_rejected_access_token_without_client_credentials_says_what_to_set(fake):
    fake.sessions.add("S")
    with pytest.raises(ThingSpaceError) as caught:
        client(creds=Credentials(None, None, "user", "pass", "A", "S")).send_sms(SMS)
    assert caught.value.message == ("The access token was rejected or expired and no client_id/client_secret is set to get a new one "
                                    "(env THINGSPACE_CLIENT_ID, THINGSPACE_CLIENT_SECRET)")
    assert requests_made(fake) == [("POST", SMS_PATH)]


@pytest.mark.parametrize("username, password", [(None, None), ("user", None), (None, "pass")])
def test_a_rejected_session_token_without_username_and_password_says_what_to_set(fake, username, password):
    fake.access_tokens.add("A")
    with pytest.raises(ThingSpaceError) as caught:
        client(creds=Credentials(None, None, username, password, "A", "S")).send_sms(SMS)
    assert caught.value.message == ("The session token was rejected or expired and no username/password is set to log in again "
                                    "(env THINGSPACE_USERNAME, THINGSPACE_PASSWORD)")
    assert requests_made(fake) == [("POST", SMS_PATH)]


def test_missing_credentials_name_the_options_and_variables():
    assert credentials_problem(CREDS) is None
    assert credentials_problem(Credentials(None, None, None, None, "A", "S")) is None
    assert credentials_problem(Credentials("cid", None, "user", None, None, None)) == (
        "an OAuth token needs client_id and client_secret (env THINGSPACE_CLIENT_ID, THINGSPACE_CLIENT_SECRET) or access_token "
        "(env THINGSPACE_ACCESS_TOKEN); a session token needs username and password (env THINGSPACE_USERNAME, THINGSPACE_PASSWORD) or "
        "session_token (env THINGSPACE_SESSION_TOKEN)")
