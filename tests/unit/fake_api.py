"""A small in-memory ThingSpace behind `requests`, for unit tests that fake the HTTP layer.

It refuses what the vendor refuses where the collection depends on it: OAuth basic credentials, the login, both
tokens, the shape of POST /sms, unknown accounts, groups and cursors, used history tokens, listener names, URLs and
ports, and the DELETE of a listener that is not registered. Codes the vendor does not document are those of the
emulator (docs/emulator.md)."""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml

API = "http://127.0.0.1:9"
ACCOUNT = "0000123456-00001"
CREDENTIALS = {"client_id": "cid", "client_secret": "csecret", "username": "user", "password": "pass"}
M2M = "/api/m2m/v1"
# The vendor's rules, from the table the emulator and the collection are checked against.
RULES = yaml.safe_load((Path(__file__).resolve().parents[1] / "vendor_rules.yml").read_text())
MAX_DEVICES = RULES["max_devices_per_request"]["value"]
HISTORY_BLOCK = 100
KINDS = {entry["kind"] for entry in RULES["device_identifiers"]["kinds"]}
ENCODINGS = {entry["name"].lower() for entry in RULES["message_encodings"]["encodings"]}
SMS_FIELDS = {"smsMessage", "deviceIds", "accountName", "groupName", "servicePlan", "customFields", "dataEncoding"}
CUSTOM_FIELDS = {"CustomField%d" % n for n in range(1, 6)}
SERVICE_NAMES = {entry["name"] for entry in RULES["callback_services"]}
CALLBACK_PORTS = set(RULES["callback_listener_ports"]["ports"]).union(
    *(range(low, high + 1) for low, high in RULES["callback_listener_ports"]["ranges"]))


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


class Refused(Exception):
    """An error answer: HTTP status and JSON body."""

    def __init__(self, status, body):
        super().__init__(status, body)
        self.status = status
        self.body = body


def bad_request(code, message):
    return Refused(400, {"errorCode": code, "errorMessage": message})


def gateway_fault(code, message):
    return Refused(401, {"fault": {"code": code, "message": message}})


class FakeThingSpace(requests.adapters.BaseAdapter):
    """A small in-memory ThingSpace behind `requests`: every request is recorded in ``calls`` as
    (method, path, json body or form), and in ``sent`` as (the prepared request, the adapter's keyword arguments:
    timeout, verify, ...) for the headers, the full URL and the transport settings. ``script(method, path_regex, *answers)`` makes the next matching calls
    answer with the given (status, body, headers) tuples or raise the given exceptions, in place of the fake's own
    answer; ``check_scripts_used()`` fails the test when one was never used (the ``fake`` fixture calls it)."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.sent = []
        self.scripted = []
        self.clients = {CREDENTIALS["client_id"]: CREDENTIALS["client_secret"]}
        self.passwords = {CREDENTIALS["username"]: CREDENTIALS["password"]}
        self.access_tokens = set()
        self.sessions = set()
        self.listeners = {}
        self.queue = []
        self.history_tokens = {}
        self._history_counter = itertools.count(HISTORY_BLOCK, HISTORY_BLOCK)
        self.devices = [
            {"accountName": ACCOUNT, "deviceIds": [{"kind": "iccid", "id": "891480000008000%05d" % n}, {"kind": "mdn", "id": "555000%04d" % n}],
             "groupNames": ["west" if n % 2 else "east"], "customFields": [{"key": "CustomField1", "value": "Wave-3" if n <= 4 else "wave-4"}],
             "carrierInformations": [{"servicePlan": "m2m-basic", "state": "active"}], "extendedAttributes": [{"key": "DeviceId", "value": str(1000 + n)}]}
            for n in range(1, 8)
        ]
        self.device_page = 3
        # The vendor refuses a POST /sms naming a device the account does not have (DeviceNotFound); most tests send to
        # devices the fake's fleet does not list, so it does only when this is set.
        self.refuse_unknown_devices = False

    def script(self, method, path, *answers):
        self.scripted.append([method, re.compile(path), list(answers)])

    def check_scripts_used(self):
        unused = [(method, pattern.pattern, answers) for method, pattern, answers in self.scripted if answers]
        if unused:
            pytest.fail("scripted answers never used: %r" % unused, pytrace=False)

    def count(self, method, path):
        return sum(1 for call in self.calls if call[0] == method and re.search(path, call[1]))

    def send(self, request, **kwargs):
        url = urlsplit(request.url)
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        json_body = (request.headers.get("Content-Type") or "").startswith("application/json")
        payload = json.loads(body) if body and json_body else parse_qs(body or "")
        self.calls.append((request.method, url.path, payload))
        self.sent.append((request, kwargs))
        for method, pattern, answers in self.scripted:
            if answers and method == request.method and pattern.search(url.path):
                answer = answers.pop(0)
                if isinstance(answer, BaseException):
                    raise answer
                return FakeResponse(request, *answer)
        try:
            status, answer, headers = self.route(request, url, payload)
        except Refused as refused:
            status, answer, headers = refused.status, refused.body, None
        return FakeResponse(request, status, answer, headers)

    def close(self):
        pass

    # --- auth -------------------------------------------------------------------------------------

    def oauth(self, request, form):
        scheme, _space, encoded = (request.headers.get("Authorization") or "").partition(" ")
        if scheme != "Basic" or not encoded:
            raise gateway_fault("900902", "Missing Credentials")
        try:
            client_id, _colon, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id, secret = None, None
        if client_id not in self.clients or self.clients[client_id] != secret:
            raise Refused(401, {"error": "invalid_client", "error_description": "Client Authentication failed."})
        if form.get("grant_type") != ["client_credentials"]:
            raise Refused(400, {"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"})
        token = uuid.uuid4().hex
        self.access_tokens.add(token)
        return {"access_token": token, "token_type": "Bearer", "expires_in": 3600}

    def check_bearer(self, request):
        scheme, _space, token = (request.headers.get("Authorization") or "").partition(" ")
        if scheme != "Bearer" or not token:
            raise gateway_fault("900902", "Missing Credentials")
        if token not in self.access_tokens:
            raise gateway_fault("900901", "Invalid Credentials")

    def login(self, payload):
        if not isinstance(payload, dict) or set(payload) != {"username", "password"}:
            raise bad_request("INPUT_INVALID.Body.Invalid", "the login body is {username, password}")
        if self.passwords.get(payload["username"]) != payload["password"]:
            raise bad_request("REQUEST_FAILED.UnexpectedError", "Invalid credentials")
        token = str(uuid.uuid4())
        self.sessions.add(token)
        return {"sessionToken": token}

    def check_session(self, request):
        session = request.headers.get("VZ-M2M-Token")
        if not session:
            raise bad_request("INPUT_INVALID.SessionToken.Invalid", "VZ-M2M-Token is missing")
        if session not in self.sessions:
            raise bad_request("REQUEST_FAILED.SessionToken.Expired", "Session expired")

    @staticmethod
    def check_account(account):
        if account != ACCOUNT:
            raise bad_request("UnifiedWebService.REQUEST_FAILED.AccountNotFound", "Account %s was not found." % account)

    # --- routes -----------------------------------------------------------------------------------

    def route(self, request, url, payload):
        path = url.path
        if path == "/api/ts/v1/oauth2/token" and request.method == "POST":
            return 200, self.oauth(request, payload), None
        self.check_bearer(request)
        if path == M2M + "/session/login" and request.method == "POST":
            return 200, self.login(payload), None
        self.check_session(request)
        if path == M2M + "/sms" and request.method == "POST":
            self.check_sms(payload)
            return 200, {"requestId": str(uuid.uuid4())}, None
        match = re.fullmatch(M2M + r"/callbacks/([^/]+)(?:/name/([^/]+))?", path)
        if match:
            account, name = match.groups()
            self.check_account(account)
            return self.callbacks(request.method, account, name, payload)
        match = re.fullmatch(M2M + r"/sms/([^/]+)/startCallbacks", path)
        if match and request.method == "PUT":
            self.check_account(match.group(1))
            return 200, {"success": True}, None
        match = re.fullmatch(M2M + r"/sms/([^/]+)/history", path)
        if match and request.method == "GET":
            self.check_account(match.group(1))
            return self.history(match.group(1), parse_qs(url.query).get("next"))
        if path == M2M + "/devices/actions/list" and request.method == "POST":
            return self.device_list(payload)
        return 404, {"fault": {"code": "900906", "message": "No matching resource found in the API for the given request"}}, None

    def check_sms(self, body):
        """POST /sms as the vendor checks it, first failure wins."""
        if not isinstance(body, dict) or not set(body) <= SMS_FIELDS:
            raise bad_request("INPUT_INVALID.Body.Invalid", "the body is an object of %s" % ", ".join(sorted(SMS_FIELDS)))
        if not isinstance(body.get("smsMessage"), str) or not body["smsMessage"]:
            raise bad_request("INPUT_INVALID.SmsMessage.Null", "smsMessage is required.")
        if str(body.get("dataEncoding", "7-bit")).lower() not in ENCODINGS:
            raise bad_request("INPUT_INVALID.DataEncoding.Invalid", "dataEncoding %r" % body["dataEncoding"])
        devices = body.get("deviceIds")
        filtered = any(body.get(name) for name in ("groupName", "servicePlan", "customFields"))
        if devices and filtered:
            raise bad_request("INPUT_INVALID.DeviceIds.Conflict", "Give deviceIds or groupName/servicePlan/customFields, not both.")
        if not devices and not filtered:
            raise bad_request("INPUT_INVALID.DeviceIds.Null", "Give deviceIds or at least one of groupName, servicePlan, customFields.")
        if len(devices or ()) > MAX_DEVICES:
            raise bad_request("INPUT_INVALID.MaxRequestsExceeded", "%d devices requested; at most %d are allowed." % (len(devices), MAX_DEVICES))
        for device in devices or ():
            if not isinstance(device, dict) or set(device) != {"kind", "id"} or not isinstance(device["id"], str) or not device["id"]:
                raise bad_request("INPUT_INVALID.Body.Invalid", "each of deviceIds is {kind, id}: %r" % (device,))
            if str(device["kind"]).lower() not in KINDS:
                raise bad_request("INPUT_INVALID.Device.Kind.Invalid", "Device kind %r is not valid." % device["kind"])
        for field in body.get("customFields") or ():
            if not isinstance(field, dict) or field.get("key") not in CUSTOM_FIELDS or not isinstance(field.get("value"), str):
                raise bad_request("INPUT_INVALID.CustomField.InvalidName", "Custom field %r" % (field,))
        if "accountName" in body:
            self.check_account(body["accountName"])
        if self.refuse_unknown_devices:
            known = {(entry["kind"].lower(), entry["id"]) for device in self.devices for entry in device["deviceIds"]}
            if any((device["kind"].lower(), device["id"]) not in known for device in devices or ()):
                raise bad_request("REQUEST_FAILED.DeviceNotFound", "Device was not found.")
        if body.get("groupName") and not any(body["groupName"] in device["groupNames"] for device in self.devices):
            raise bad_request("REQUEST_FAILED.DeviceGroupNotFound", "Device group %r was not found." % body["groupName"])

    def callbacks(self, method, account, name, payload):
        if method == "GET" and name is None:
            return 200, [dict(entry, accountName=account) for entry in self.listeners.values()], None
        if method == "POST" and name is None:
            if payload.get("name") not in SERVICE_NAMES:
                raise bad_request("INPUT_INVALID.ServiceName.Invalid", "%r is not a callback service name." % payload.get("name"))
            parts = urlsplit(payload.get("url") or "")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise bad_request("INPUT_INVALID.Url.Invalid", "%r is not an http or https URL." % payload.get("url"))
            if (parts.port or (443 if parts.scheme == "https" else 80)) not in CALLBACK_PORTS:
                raise bad_request("INPUT_INVALID.Url.PortNotAllowed", "Port %s is not allowed." % parts.port)
            self.listeners[payload["name"]] = {"serviceName": payload["name"], **{k: v for k, v in payload.items() if k != "name"}}
            return 200, {"accountName": account, "serviceName": payload["name"]}, None
        if method == "DELETE" and name is not None:
            if name not in SERVICE_NAMES:
                raise bad_request("INPUT_INVALID.ServiceName.Invalid", "%r is not a callback service name." % name)
            if self.listeners.pop(name, None) is None:
                raise bad_request("REQUEST_FAILED.CallbackNotRegistered", "No %s listener is registered for account %s." % (name, account))
            return 200, {"accountName": account, "serviceName": name}, None
        return 404, {"fault": {"code": "900906", "message": "No matching resource found in the API for the given request"}}, None

    def history(self, account, given):
        """The oldest unacknowledged block; ``next=N`` acknowledges the block N came with (each N works once); a last
        block (HTTP 200) is acknowledged once returned."""
        if given:
            acknowledged = self.history_tokens.pop((account, given[0]), None)
            if acknowledged is None:
                raise bad_request("INPUT_INVALID.HistoryToken.Invalid", "next=%s is not a token this account was given, or it was used." % given[0])
            del self.queue[:acknowledged]
        block = self.queue[:HISTORY_BLOCK]
        if len(self.queue) <= HISTORY_BLOCK:
            del self.queue[:]
            return 200, {"messages": block, "hasMoreData": False}, None
        token = str(next(self._history_counter))
        self.history_tokens[(account, token)] = len(block)
        return 202, {"messages": block, "hasMoreData": True}, {"Location": "/sms/%s/history?next=%s" % (account, token)}

    def device_list(self, payload):
        if not payload.get("accountName"):
            raise bad_request("INPUT_INVALID.Account.NotDefined", "accountName is required.")
        self.check_account(payload["accountName"])
        group = payload.get("groupName")
        if group and not any(group in device["groupNames"] for device in self.devices):
            raise bad_request("REQUEST_FAILED.DeviceGroupNotFound", "Device group %r was not found." % group)
        after = payload.get("largestDeviceIdSeen")
        if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
            raise bad_request("INPUT_INVALID.Body.Invalid", "largestDeviceIdSeen must be an integer of 0 or more.")
        plan = payload.get("servicePlan")
        # Custom field values match ignoring case, as the vendor matches them.
        fields = {(field["key"], field["value"].lower()) for field in payload.get("customFields") or ()}
        selected = [d for d in self.devices if (not group or group in d["groupNames"]) and (not plan or plan == _plan(d))
                    and fields <= {(field["key"], field["value"].lower()) for field in d.get("customFields", ())} and _internal_id(d) > (after or 0)]
        more = len(selected) > self.device_page
        return (202 if more else 200), {"devices": selected[:self.device_page], "hasMoreData": more}, None


def _plan(device):
    return next((entry["servicePlan"] for entry in device.get("carrierInformations", ())), None)


def _internal_id(device):
    """The service's id of a device, its extended attribute DeviceId: the device list's paging cursor."""
    return int(next(entry["value"] for entry in device["extendedAttributes"] if entry["key"] == "DeviceId"))
