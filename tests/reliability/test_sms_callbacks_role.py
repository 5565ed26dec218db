"""Role thingspace.m2m.sms_callbacks through ansible-playbook against the emulator: the listener URLs it derives from
sms_callbacks_public_url, the explicit URLs that win over them, and the check that fails before any request when a
URL is neither given nor derivable."""

from __future__ import annotations

import yaml
from harness import ACCOUNT, CREDENTIALS

OTHER = "0000888888-00001"
PUBLIC_URL = "http://127.0.0.1:9003/thingspace/"


def run_role(ansible, emulator, variables):
    """The role with ``variables`` as a user's play runs it (credentials from the environment); (play, registrations
    {(account, service): url}, listener requests the emulator received)."""
    playbook = ansible.workdir / "role.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Callbacks", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}", **variables},
        "roles": ["thingspace.m2m.sms_callbacks"],
    }]))
    env = {"THINGSPACE_" + name.upper(): value for name, value in CREDENTIALS.items()}
    env.update(THINGSPACE_API_URL=emulator.url, THINGSPACE_STATE_DIR=str(ansible.state_dir))
    play = ansible.run_playbook(playbook, args=("-i", "localhost,"), env=env)
    state = emulator.call("GET", "state")
    registrations = {(entry["accountName"], entry["serviceName"]): entry["url"] for entry in state["registrations"]}
    writes = [entry for entry in emulator.call("GET", "requests")["requests"] if entry["method"] in ("POST", "PUT") and "callbacks" in entry["path"]]
    return play, registrations, writes


def test_every_url_is_derived_from_the_public_url_unless_given(ansible, fresh_emulator):
    derived = "http://127.0.0.1:9003/thingspace/%s/" % ACCOUNT
    usage, sms = fresh_emulator.url + "/_emulator/listener/usage", fresh_emulator.url + "/_emulator/listener/sms"
    play, registrations, _writes = run_role(ansible, fresh_emulator, {
        "sms_callbacks_public_url": PUBLIC_URL,
        "sms_callbacks_accounts": [{"account_name": ACCOUNT, "callback_username": "listener", "callback_password": "listener-pw",
                                    "services": [{"name": "SMSDeliveryConfirmation"}, {"name": "DeviceUsage", "url": usage}]}],
    })
    assert play.returncode == 0, play.describe()
    assert registrations == {(ACCOUNT, "EnhancedConnectivityService"): derived + "EnhancedConnectivityService",
                             (ACCOUNT, "SMSDeliveryConfirmation"): derived + "SMSDeliveryConfirmation", (ACCOUNT, "DeviceUsage"): usage}

    play, registrations, _writes = run_role(ansible, fresh_emulator, {
        "sms_callbacks_public_url": PUBLIC_URL,
        "sms_callbacks_accounts": [{"account_name": ACCOUNT, "callback_url": sms, "services": [{"name": "SMSDeliveryConfirmation", "url": usage}]}],
    })
    assert play.returncode == 0, play.describe()
    assert registrations == {(ACCOUNT, "EnhancedConnectivityService"): sms, (ACCOUNT, "SMSDeliveryConfirmation"): usage, (ACCOUNT, "DeviceUsage"): usage}


def test_a_url_neither_given_nor_derivable_fails_before_any_request(ansible, fresh_emulator):
    play, registrations, writes = run_role(ansible, fresh_emulator, {"sms_callbacks_accounts": [
        {"account_name": ACCOUNT, "callback_url": PUBLIC_URL + ACCOUNT + "/EnhancedConnectivityService"},
        {"account_name": OTHER, "services": [{"name": "SMSDeliveryConfirmation"}]},
    ]})
    # The first account is fine, and nothing of it is registered either: every account is checked first.
    assert play.returncode != 0 and not registrations and not writes
    assert ("Account %s: set its callback_url, or sms_callbacks_public_url (the public base URL of the callbacks source, from which the "
            "URLs are derived); set the url of SMSDeliveryConfirmation: sms_callbacks_public_url is not set" % OTHER) in play.stdout

    play, registrations, writes = run_role(ansible, fresh_emulator, {
        "sms_callbacks_public_url": PUBLIC_URL,
        "sms_callbacks_accounts": [{"account_name": ACCOUNT, "services": [{"name": "SMSDeliveryConfirmation"}, {"name": "DeviceUsage"}]}],
    })
    assert play.returncode != 0 and not registrations and not writes
    assert ("Account %s: set the url of DeviceUsage: the callbacks source takes only EnhancedConnectivityService and SMSDeliveryConfirmation, "
            "so no URL is derived for another service" % ACCOUNT) in play.stdout


def test_a_public_url_that_is_not_a_base_url_fails_before_any_request(ansible, fresh_emulator):
    play, registrations, writes = run_role(ansible, fresh_emulator, {
        "sms_callbacks_public_url": "iot.example.com:9002/thingspace?x=1",
        "sms_callbacks_accounts": [{"account_name": ACCOUNT}],
    })
    assert play.returncode != 0 and not registrations and not writes
    assert "sms_callbacks_public_url is iot.example.com:9002/thingspace?x=1: give the public base URL of the callbacks source" in play.stdout
