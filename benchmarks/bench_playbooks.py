"""The playbooks the benchmarks compare, written as a user would write them.

The bulk playbooks read the device list the same way (``lookup('file') | from_json``), but for the one that gives
vz_sms_send the file itself (``devices_file``), and take the API URL and credentials from the environment (THINGSPACE_*),
as the collection's modules do. The ``uri`` playbooks are what a
competent user writes without the collection: an OAuth token task (Basic auth, form body), a session login task,
then the sends with both headers; the bulk one loops over chunks of 10,000 devices with the ``batch`` filter.
"""

from __future__ import annotations

import os

ACCOUNT = "0000999999-00001"
MESSAGE = "benchmark"

_FLEET_VAR = """\
    fleet: "{{ lookup('ansible.builtin.file', 'devices.json') | from_json }}"
"""

_URI_LOGIN = """\
    - name: Get an OAuth access token
      ansible.builtin.uri:
        url: "{{ api_url }}/api/ts/v1/oauth2/token"
        method: POST
        url_username: "{{ lookup('ansible.builtin.env', 'THINGSPACE_CLIENT_ID') }}"
        url_password: "{{ lookup('ansible.builtin.env', 'THINGSPACE_CLIENT_SECRET') }}"
        force_basic_auth: true
        body_format: form-urlencoded
        body:
          grant_type: client_credentials
      register: oauth
      no_log: true

    - name: Log in to the M2M API
      ansible.builtin.uri:
        url: "{{ api_url }}/api/m2m/v1/session/login"
        method: POST
        headers:
          Authorization: "Bearer {{ oauth.json.access_token }}"
        body_format: json
        body:
          username: "{{ lookup('ansible.builtin.env', 'THINGSPACE_USERNAME') }}"
          password: "{{ lookup('ansible.builtin.env', 'THINGSPACE_PASSWORD') }}"
      register: login
      no_log: true
"""

_URI_HEAD = """\
- name: {name}
  hosts: localhost
  gather_facts: false
  vars:
{fleet}    api_url: "{{{{ lookup('ansible.builtin.env', 'THINGSPACE_API_URL') }}}}"
  tasks:
"""

_URI_SEND = """\
    - name: {name}
      ansible.builtin.uri:
        url: "{{{{ api_url }}}}/api/m2m/v1/sms"
        method: POST
        headers:
          Authorization: "Bearer {{{{ oauth.json.access_token }}}}"
          VZ-M2M-Token: "{{{{ login.json.sessionToken }}}}"
        body_format: json
        body:
          accountName: "{account}"
          smsMessage: {message}
          deviceIds: {devices}
"""

BULK_MODULE = (
    """\
- name: Send to the whole fleet with the collection
  hosts: localhost
  gather_facts: false
  vars:
"""
    + _FLEET_VAR
    + f"""\
  tasks:
    - name: Send the SMS to every device (batches of 10,000, ledger, one login)
      thingspace.m2m.vz_sms_send:
        account_name: "{ACCOUNT}"
        devices: "{{{{ fleet.devices }}}}"
        sms_message: {MESSAGE}
"""
)

# The same send with the list in a file the module reads itself (devices.json, next to the playbook): no templating.
BULK_FILE = f"""\
- name: Send to the whole fleet with the collection, the list in a file
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Send the SMS to every device of devices.json (batches of 10,000, ledger, one login)
      thingspace.m2m.vz_sms_send:
        account_name: "{ACCOUNT}"
        devices_file: devices.json
        sms_message: {MESSAGE}
"""

BULK_URI = (
    _URI_HEAD.format(name="Send to the whole fleet with ansible.builtin.uri", fleet=_FLEET_VAR)
    + _URI_LOGIN
    + "\n"
    + _URI_SEND.format(name="Send the SMS, 10,000 devices per request", account=ACCOUNT, message=MESSAGE, devices='"{{ item }}"')
    + """\
      loop: "{{ fleet.devices | batch(10000) | list }}"
      loop_control:
        index_var: chunk
        label: "chunk {{ chunk }}"
"""
)


# A task environment makes the action plugin hand the task to the module (plugins/plugin_utils/controller.py): the
# module path, for the profile.
_AS_MODULE = """\
      environment:
        THINGSPACE_BENCH_RUN: as a module
"""

# What Ansible does for the bulk task before vz_sms_send runs: load the list and template it into a task argument. The
# task is skipped at the default verbosity, after Ansible has templated its arguments, so its result is small.
BULK_ANSIBLE = (
    """\
- name: Load the fleet and template it into a task argument, nothing sent
  hosts: localhost
  gather_facts: false
  vars:
"""
    + _FLEET_VAR
    + """\
  tasks:
    - name: The device list as the vz_sms_send task gets it
      ansible.builtin.debug:
        msg: "{{ fleet.devices }}"
        verbosity: 1
"""
)


def mdn(index):
    """The MDN of fleet device ``index`` (bench_emulator.write_fleet gives device n the MDN 7000000000 + n)."""
    return "%d" % (7000000000 + index)


def tasks_module(count, action="thingspace.m2m.vz_sms_send"):
    """A play of ``count`` vz_sms_send tasks, one device each; or of another ``action`` taking the same options."""
    tasks = [
        f"""\
    - name: Send to device {n}
      {action}:
        account_name: "{ACCOUNT}"
        devices:
          - {{kind: mdn, id: "{mdn(n)}"}}
        sms_message: {MESSAGE}
"""
        for n in range(count)
    ]
    return "- name: %d %s tasks\n  hosts: localhost\n  gather_facts: false\n  tasks:\n" % (count, action.split(".")[-1]) + "\n".join(tasks)


def tasks_debug(count):
    """The floor of any module: a play of ``count`` ``ansible.builtin.debug`` tasks, Ansible's own cost per task."""
    tasks = [
        f"""\
    - name: Device {n}
      ansible.builtin.debug:
        msg: "{mdn(n)}"
"""
        for n in range(count)
    ]
    return "- name: %d debug tasks\n  hosts: localhost\n  gather_facts: false\n  tasks:\n" % count + "\n".join(tasks)


def tasks_uri(count):
    """The same with ``uri``: the two login tasks, then ``count`` send tasks."""
    sends = [
        _URI_SEND.format(name="Send to device %d" % n, account=ACCOUNT, message=MESSAGE, devices='[{kind: mdn, id: "%s"}]' % mdn(n))
        for n in range(count)
    ]
    return _URI_HEAD.format(name="%d uri tasks" % count, fleet="") + _URI_LOGIN + "\n" + "\n".join(sends)


def write_all(workdir, task_count):
    """Write every playbook into ``workdir``; their paths by name."""
    texts = {
        "bulk_module.yml": BULK_MODULE,
        "bulk_uri.yml": BULK_URI,
        "tasks_module.yml": tasks_module(task_count),
        "tasks_uri.yml": tasks_uri(task_count),
        "tasks_debug.yml": tasks_debug(task_count),
        # The floor of a task that sends and records: action_plugins/bench_floor.py.
        "tasks_floor.yml": tasks_module(task_count, action="bench_floor"),
        "one_task.yml": tasks_module(1),
        "one_task_as_module.yml": tasks_module(1) + _AS_MODULE,
        "bulk_as_module.yml": BULK_MODULE + _AS_MODULE,
        "bulk_file.yml": BULK_FILE,
        "bulk_file_as_module.yml": BULK_FILE + _AS_MODULE,
        "bulk_ansible.yml": BULK_ANSIBLE,
    }
    paths = {}
    for name, text in texts.items():
        paths[name] = os.path.join(workdir, name)
        with open(paths[name], "w", encoding="utf-8") as handle:
            handle.write(text)
    return paths
