# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The floor of a task that sends one SMS and records it, for run.py's per-task plays (section 3): an action plugin that
does, in Ansible's worker, one POST /sms on a new requests Session and one SQLite commit in a WAL file with
``synchronous=FULL`` (the ledger's settings), opened and closed per task, and nothing else: no argument checks, no token
cache key, no claim before the request, no purpose or diff. The first task of a play logs in and keeps both tokens in a
plain JSON file in THINGSPACE_STATE_DIR, which the others read. requests is imported here, so with the plugin in
ansible-playbook's main process, as the collection's action plugin is."""

from __future__ import annotations

import json
import os
import sqlite3

import requests
from ansible.plugins.action import ActionBase

OAUTH_PATH = "/api/ts/v1/oauth2/token"
LOGIN_PATH = "/api/m2m/v1/session/login"
SMS_PATH = "/api/m2m/v1/sms"


def _headers(session, api, path):
    """Both tokens: from ``path``, or a login written there."""
    if not os.path.exists(path):
        token = session.post(api + OAUTH_PATH, data={"grant_type": "client_credentials"},
                             auth=(os.environ["THINGSPACE_CLIENT_ID"], os.environ["THINGSPACE_CLIENT_SECRET"]))
        token.raise_for_status()
        bearer = "Bearer " + token.json()["access_token"]
        login = session.post(api + LOGIN_PATH, headers={"Authorization": bearer},
                             json={"username": os.environ["THINGSPACE_USERNAME"], "password": os.environ["THINGSPACE_PASSWORD"]})
        login.raise_for_status()
        with open(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600), "w", encoding="utf-8") as out:
            json.dump({"Authorization": bearer, "VZ-M2M-Token": login.json()["sessionToken"]}, out)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def send_and_record(args):
    """The task's work: one POST /sms, one commit; the request id."""
    api, state = os.environ["THINGSPACE_API_URL"], os.environ["THINGSPACE_STATE_DIR"]
    os.makedirs(state, mode=0o700, exist_ok=True)
    session = requests.Session()
    answer = session.post(api + SMS_PATH, headers=_headers(session, api, os.path.join(state, "floor-tokens.json")),
                          json={"accountName": args["account_name"], "smsMessage": args["sms_message"], "deviceIds": args["devices"]})
    answer.raise_for_status()
    request_id = answer.json()["requestId"]
    db = sqlite3.connect(os.path.join(state, "floor.sqlite3"), isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS sends (request_id TEXT PRIMARY KEY, devices TEXT NOT NULL)")
        db.execute("INSERT INTO sends VALUES (?, ?)", (request_id, json.dumps(args["devices"])))
    finally:
        db.close()
    return request_id


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        result.update(changed=True, request_id=send_and_record(self._task.args))
        return result
