"""A small in-memory ThingSpace behind `requests`, for unit tests that fake the HTTP layer."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import requests

API = "http://127.0.0.1:9"
ACCOUNT = "0000123456-00001"
CREDENTIALS = {"client_id": "cid", "client_secret": "csecret", "username": "user", "password": "pass"}


class FakeResponse(requests.Response):
    def __init__(self, request, status, body=None, headers=None):
        super().__init__()
        self.status_code = status
        self.request = request
        self.url = request.url
        self.reason = "FAKE"
        self._content = b"" if body is None else json.dumps(body).encode()
        self.headers.update(headers or {})
        self.headers.setdefault("Content-Type", "application/json")


class FakeThingSpace(requests.adapters.BaseAdapter):
    """A small in-memory ThingSpace behind `requests`: every request is recorded in ``calls`` as
    (method, path, json body or form). ``script(method, path_regex, *answers)`` makes the next matching calls
    answer with the given (status, body, headers) tuples or raise the given exceptions."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.scripted = []
        self.access_tokens = set()
        self.sessions = set()
        self.passwords = {"user": "pass"}
        self.listeners = {}
        self.queue = []
        self.devices = [
            {"accountName": ACCOUNT, "deviceIds": [{"kind": "iccid", "id": "891480000008000%05d" % n}], "groupNames": ["west" if n % 2 else "east"],
             "extendedAttributes": [{"key": "DeviceId", "value": str(1000 + n)}]}
            for n in range(1, 8)
        ]
        self.device_page = 3

    def script(self, method, path, *answers):
        self.scripted.append([method, re.compile(path), list(answers)])

    def count(self, method, path):
        return sum(1 for call in self.calls if call[0] == method and re.search(path, call[1]))

    def send(self, request, **kwargs):
        url = urlsplit(request.url)
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        payload = json.loads(body) if body and request.headers.get("Content-Type") == "application/json" else parse_qs(body or "")
        self.calls.append((request.method, url.path, payload))
        for entry in self.scripted:
            method, pattern, answers = entry
            if answers and method == request.method and pattern.search(url.path):
                answer = answers.pop(0)
                if isinstance(answer, BaseException):
                    raise answer
                return FakeResponse(request, *answer)
        status, answer, headers = self.route(request, url, payload)
        return FakeResponse(request, status, answer, headers)

    def close(self):
        pass

    def route(self, request, url, payload):
        path = url.path
        if path == "/api/ts/v1/oauth2/token":
            token = uuid.uuid4().hex
            self.access_tokens.add(token)
            return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}, None
        bearer = request.headers.get("Authorization", "")[len("Bearer "):]
        if bearer not in self.access_tokens:
            return 401, {"fault": {"code": "900901", "message": "Invalid Credentials"}}, None
        if path == "/api/m2m/v1/session/login":
            if self.passwords.get(payload.get("username")) != payload.get("password"):
                return 400, {"errorCode": "REQUEST_FAILED.UnexpectedError", "errorMessage": "Invalid credentials"}, None
            token = str(uuid.uuid4())
            self.sessions.add(token)
            return 200, {"sessionToken": token}, None
        if request.headers.get("VZ-M2M-Token") not in self.sessions:
            return 400, {"errorCode": "REQUEST_FAILED.SessionToken.Expired", "errorMessage": "Session expired"}, None
        if path == "/api/m2m/v1/sms":
            return 200, {"requestId": str(uuid.uuid4())}, None
        match = re.fullmatch(r"/api/m2m/v1/callbacks/([^/]+)(?:/name/([^/]+))?", path)
        if match:
            account, name = match.groups()
            if request.method == "GET":
                return 200, [dict(entry, accountName=account) for entry in self.listeners.values()], None
            if request.method == "POST":
                self.listeners[payload["name"]] = {"serviceName": payload["name"], **{k: v for k, v in payload.items() if k != "name"}}
                return 200, {"accountName": account, "serviceName": payload["name"]}, None
            self.listeners.pop(name)
            return 200, {"accountName": account, "serviceName": name}, None
        if re.fullmatch(r"/api/m2m/v1/sms/[^/]+/startCallbacks", path):
            return 200, {"success": True}, None
        if re.fullmatch(r"/api/m2m/v1/sms/[^/]+/history", path):
            start = int(parse_qs(url.query).get("next", ["0"])[0])
            block = self.queue[start:start + 100]
            if start + 100 < len(self.queue):
                return 202, {"messages": block, "hasMoreData": True}, {"Location": "/sms/%s/history?next=%d" % (path.split("/")[5], start + 100)}
            return 200, {"messages": block, "hasMoreData": False}, None
        if path == "/api/m2m/v1/devices/actions/list":
            selected = [d for d in self.devices if not payload.get("groupName") or payload["groupName"] in d["groupNames"]]
            after = [d for d in selected if _internal_id(d) > (payload.get("largestDeviceIdSeen") or 0)]
            more = len(after) > self.device_page
            return (202 if more else 200), {"devices": after[:self.device_page], "hasMoreData": more}, None
        return 404, {"errorCode": "NOT_FOUND", "errorMessage": path}, None


def _internal_id(device):
    return int(next(entry["value"] for entry in device["extendedAttributes"] if entry["key"] == "DeviceId"))
