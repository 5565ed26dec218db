"""A client that follows the vendor's documentation (plain requests, the documented paths and headers,
nothing emulator-specific), and assertions on the vendor's error shapes."""

import os
import re
from typing import Optional

import requests

DATA = os.path.join(os.path.dirname(__file__), "data")
ACCOUNT = "0000123456-00001"


class VendorClient:
    """ThingSpace as its documentation describes it: OAuth token, session login, two headers."""

    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()
        self.bearer: Optional[str] = None
        self.session: Optional[str] = None

    def token(self, client_id: str = "emulator-client", secret: str = "emulator-secret", grant: str = "client_credentials") -> requests.Response:
        return self.http.post(f"{self.base}/api/ts/v1/oauth2/token", auth=(client_id, secret), data={"grant_type": grant})

    def login(self, username: str = "emulator-user", password: str = "emulator-pass") -> requests.Response:
        return self.http.post(
            f"{self.base}/api/m2m/v1/session/login", headers={"Authorization": f"Bearer {self.bearer}"}, json={"username": username, "password": password}
        )

    def authenticate(self, username: str = "emulator-user", password: str = "emulator-pass") -> "VendorClient":
        self.bearer = self.token().json()["access_token"]
        self.session = self.login(username, password).json()["sessionToken"]
        return self

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.bearer}", "VZ-M2M-Token": self.session, "Content-Type": "application/json"}

    def call(self, method: str, path: str, body=None, headers: Optional[dict] = None, **kwargs) -> requests.Response:
        """A Connectivity Management call; path is relative to /api/m2m/v1."""
        return self.http.request(method, f"{self.base}/api/m2m/v1{path}", json=body, headers=self.headers() if headers is None else headers, **kwargs)

    def send(self, **body) -> requests.Response:
        return self.call("POST", "/sms", body)

    def register(self, service: str, url: str, account: str = ACCOUNT, **credentials) -> requests.Response:
        return self.call("POST", f"/callbacks/{account}", {"name": service, "url": url, **credentials})


def error_code(response: requests.Response) -> str:
    """The M2M error code, which is "service name, a period, and the code" as the vendor writes it."""
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"errorCode", "errorMessage"}
    code = response.json()["errorCode"]
    assert re.fullmatch(r"(UnifiedWebService|DeviceService)\.(INPUT_INVALID|REQUEST_FAILED)\.[A-Za-z.]+", code), code
    return code


def fault_code(response: requests.Response) -> str:
    assert response.status_code == 401, response.text
    assert set(response.json()["fault"]) == {"code", "message", "description"}
    return response.json()["fault"]["code"]
