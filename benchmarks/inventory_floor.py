"""The floor of the inventory: a bare Python script with ``requests`` doing what ``ansible-inventory --list`` does with
the thingspace.m2m.devices plugin (OAuth token, session login, every page of the device list by largestDeviceIdSeen on
one Session, one host per device with its thingspace_* variables and groups, written as JSON), nothing else: no option
or identifier checks, no cache, no constructed groups.

    THINGSPACE_API_URL=... THINGSPACE_CLIENT_ID=... python inventory_floor.py ACCOUNT OUT.json
"""

import json
import os
import re
import sys

import requests


def main():
    account, out = sys.argv[1:3]
    api = os.environ["THINGSPACE_API_URL"]
    session = requests.Session()
    token = session.post(api + "/api/ts/v1/oauth2/token", data={"grant_type": "client_credentials"},
                         auth=(os.environ["THINGSPACE_CLIENT_ID"], os.environ["THINGSPACE_CLIENT_SECRET"]))
    token.raise_for_status()
    session.headers["Authorization"] = "Bearer " + token.json()["access_token"]
    login = session.post(api + "/api/m2m/v1/session/login", json={"username": os.environ["THINGSPACE_USERNAME"], "password": os.environ["THINGSPACE_PASSWORD"]})
    login.raise_for_status()
    session.headers["VZ-M2M-Token"] = login.json()["sessionToken"]
    hostvars, groups = {}, {}
    body = {"accountName": account}
    while True:
        answer = session.post(api + "/api/m2m/v1/devices/actions/list", json=body)
        answer.raise_for_status()
        page = answer.json()
        for device in page["devices"]:
            ids = {entry["kind"].lower(): entry["id"] for entry in device["deviceIds"]}
            carrier = (device.get("carrierInformations") or [{}])[0]
            name = ids.get("iccid") or ids.get("imei") or ids.get("mdn")
            hostvars[name] = {"thingspace_device_ids": ids, "thingspace_account": device.get("accountName"), "thingspace_state": carrier.get("state"),
                              "thingspace_service_plan": carrier.get("servicePlan"), "thingspace_groups": device.get("groupNames", []),
                              "thingspace_custom_fields": {field["key"]: field["value"] for field in device.get("customFields", [])}}
            for group in ["group_" + g for g in device.get("groupNames", [])] + ["state_" + (carrier.get("state") or "").lower()]:
                groups.setdefault(re.sub(r"[^A-Za-z0-9_]", "_", group), []).append(name)
        if not page.get("hasMoreData"):
            break
        body["largestDeviceIdSeen"] = max(int(next(a["value"] for a in d["extendedAttributes"] if a["key"] == "DeviceId")) for d in page["devices"])
    listing = {"_meta": {"hostvars": hostvars}, "all": {"children": ["ungrouped", *groups]}}
    listing.update({group: {"hosts": hosts} for group, hosts in groups.items()})
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(listing, handle, indent=4, sort_keys=True)


if __name__ == "__main__":
    main()
