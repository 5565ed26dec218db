"""The floor of the bulk send: a bare Python script with ``requests`` doing what the playbooks do (OAuth token,
session login, one POST /sms per 10,000 devices on one Session), nothing else: no ledger, no checks.

    THINGSPACE_API_URL=... THINGSPACE_CLIENT_ID=... python requests_floor.py devices.json ACCOUNT MESSAGE
"""

import json
import os
import sys

import requests


def main():
    devices_file, account, message = sys.argv[1:4]
    with open(devices_file, encoding="utf-8") as handle:
        devices = json.load(handle)["devices"]
    api = os.environ["THINGSPACE_API_URL"]
    session = requests.Session()
    token = session.post(
        api + "/api/ts/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(os.environ["THINGSPACE_CLIENT_ID"], os.environ["THINGSPACE_CLIENT_SECRET"]),
    )
    token.raise_for_status()
    session.headers["Authorization"] = "Bearer " + token.json()["access_token"]
    login = session.post(
        api + "/api/m2m/v1/session/login", json={"username": os.environ["THINGSPACE_USERNAME"], "password": os.environ["THINGSPACE_PASSWORD"]}
    )
    login.raise_for_status()
    session.headers["VZ-M2M-Token"] = login.json()["sessionToken"]
    request_ids = []
    for start in range(0, len(devices), 10000):
        answer = session.post(api + "/api/m2m/v1/sms", json={"accountName": account, "smsMessage": message, "deviceIds": devices[start:start + 10000]})
        answer.raise_for_status()
        request_ids.append(answer.json()["requestId"])
    print(json.dumps({"request_ids": request_ids}))


if __name__ == "__main__":
    main()
