"""OAuth token, session login/logout, both headers on M2M calls, expiry and the login lockout."""

import base64
import uuid

from vendor_client import ACCOUNT, error_code, fault_code

CALLBACKS = f"/callbacks/{ACCOUNT}"


def test_token_success_shape(emu):
    response = emu.client().token()
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert response.headers["Content-Type"] == "application/json"


def test_token_wrong_secret_is_invalid_client(emu):
    response = emu.client().token(secret="wrong")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert set(response.json()) == {"error", "error_description"}


def test_token_without_basic_auth_is_missing_credentials(emu):
    response = emu.client().http.post(f"{emu.url}/api/ts/v1/oauth2/token", data={"grant_type": "client_credentials"})
    assert fault_code(response) == "900902"


def test_token_grant_type_checked(emu):
    client = emu.client()
    response = client.token(grant="password")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    basic = base64.b64encode(b"emulator-client:emulator-secret").decode()
    response = client.http.post(f"{emu.url}/api/ts/v1/oauth2/token", headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_login_and_logout(emu):
    client = emu.client()
    client.bearer = client.token().json()["access_token"]
    response = client.login()
    assert response.status_code == 200
    token = response.json()["sessionToken"]
    assert str(uuid.UUID(token)) == token
    assert client.call("GET", CALLBACKS, headers={"Authorization": f"Bearer {client.bearer}", "VZ-M2M-Token": token}).status_code == 200
    client.session = token
    response = client.call("POST", "/session/logout")
    assert response.status_code == 200
    assert response.json() == {"sessionToken": token}
    assert error_code(client.call("GET", CALLBACKS)) == "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid"


def test_login_needs_bearer(emu):
    response = emu.client().http.post(f"{emu.url}/api/m2m/v1/session/login", json={"username": "emulator-user", "password": "emulator-pass"})
    assert fault_code(response) == "900902"


def test_m2m_call_bearer_checks(api):
    missing = {"VZ-M2M-Token": api.session}
    assert fault_code(api.call("GET", CALLBACKS, headers=missing)) == "900902"
    not_bearer = {"Authorization": "Basic abc", "VZ-M2M-Token": api.session}
    assert fault_code(api.call("GET", CALLBACKS, headers=not_bearer)) == "900902"
    unknown = {"Authorization": "Bearer nope", "VZ-M2M-Token": api.session}
    assert fault_code(api.call("GET", CALLBACKS, headers=unknown)) == "900901"


def test_m2m_call_session_checks(api):
    bearer = {"Authorization": f"Bearer {api.bearer}"}
    assert error_code(api.call("GET", CALLBACKS, headers=bearer)) == "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid"
    assert error_code(api.call("GET", CALLBACKS, headers={**bearer, "VZ-M2M-Token": "not-a-uuid"})) == "UnifiedWebService.REQUEST_FAILED.SessionToken.Format"
    assert (
        error_code(api.call("GET", CALLBACKS, headers={**bearer, "VZ-M2M-Token": str(uuid.uuid4())})) == "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid"
    )


def test_bearer_checked_before_session(api):
    assert fault_code(api.call("GET", CALLBACKS, headers={"Authorization": "Bearer nope"})) == "900901"


def test_bearer_expires_after_ttl(make_emulator, clock):
    emu = make_emulator(clock=clock)
    emu.admin.config(sessionIdleTtl=7200)  # the session outlives the bearer here
    client = emu.client().authenticate()
    clock.advance(3599)
    assert client.call("GET", CALLBACKS).status_code == 200
    clock.advance(1)
    assert fault_code(client.call("GET", CALLBACKS)) == "900901"


def test_configured_bearer_ttl(make_emulator, clock):
    emu = make_emulator(clock=clock)
    emu.admin.config(accessTokenTtl=60)
    client = emu.client().authenticate()
    assert client.token().json()["expires_in"] == 60
    clock.advance(59)
    assert client.call("GET", CALLBACKS).status_code == 200
    clock.advance(1)
    assert fault_code(client.call("GET", CALLBACKS)) == "900901"


def test_session_expires_when_idle_and_use_refreshes_it(make_emulator, clock):
    emu = make_emulator(clock=clock)
    emu.admin.config(accessTokenTtl=86400)  # the bearer outlives the session here
    client = emu.client().authenticate()
    for _attempt in range(3):  # 3597 s of use in all: longer than the 1200 s idle TTL
        clock.advance(1199)
        assert client.call("GET", CALLBACKS).status_code == 200
    clock.advance(1201)
    assert error_code(client.call("GET", CALLBACKS)) == "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"
    assert error_code(client.call("GET", CALLBACKS)) == "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid"


def test_configured_session_idle_ttl(make_emulator, clock):
    emu = make_emulator(clock=clock)
    emu.admin.config(sessionIdleTtl=30)
    client = emu.client().authenticate()
    clock.advance(29)
    assert client.call("GET", CALLBACKS).status_code == 200
    clock.advance(31)
    assert error_code(client.call("GET", CALLBACKS)) == "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"


def test_admin_expire_makes_tokens_invalid(emu):
    client = emu.client().authenticate()
    assert emu.admin.expire("session") == 1
    assert error_code(client.call("GET", CALLBACKS)) == "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"
    client.authenticate()
    emu.admin.expire("access")
    assert fault_code(client.call("GET", CALLBACKS)) == "900901"


def test_lockout_after_five_failed_logins(emu):
    client = emu.client()
    client.bearer = client.token().json()["access_token"]
    for _attempt in range(5):
        assert error_code(client.login(password="wrong")) == "UnifiedWebService.REQUEST_FAILED.Login.Failed"
    assert error_code(client.login()) == "UnifiedWebService.REQUEST_FAILED.Login.UserLocked"
    emu.admin.unlock("emulator-user")
    assert client.login().status_code == 200


def test_success_before_fifth_failure_resets_count(emu):
    client = emu.client()
    client.bearer = client.token().json()["access_token"]
    for _attempt in range(2):
        for _attempt in range(4):
            assert error_code(client.login(password="wrong")) == "UnifiedWebService.REQUEST_FAILED.Login.Failed"
        assert client.login().status_code == 200


def test_reset_clears_lockout_and_tokens(emu):
    client = emu.client().authenticate()
    for _attempt in range(5):
        client.login(password="wrong")
    emu.admin.reset()
    assert fault_code(client.call("GET", CALLBACKS)) == "900901"
    assert client.authenticate().session
