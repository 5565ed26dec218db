"""A send in AWX job slices (issue 24, item 4): the fleet as inventory (2,000 hosts through the thingspace.m2m.devices
plugin), 4 ansible-playbook processes started at once, each with its --limit as a job slice has, each sending to its
hosts with run_once under one idempotency key, on one PostgreSQL ledger. Every device gets the SMS exactly once (the
emulator's record of what it accepted), and the ledger holds each sent. (The re-run of a send is tests/reliability/test_postgresql.py's.)"""

from __future__ import annotations

import sys

import pytest
from harness import ACCOUNT, BIN, CREDENTIALS, ROOT, device, write_fleet

sys.path.insert(0, str(ROOT / "tests" / "utils"))
import slices

from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database
from ansible_collections.thingspace.m2m.plugins.module_utils.ledger import Ledger
from thingspace_emulator.testing import running_emulator

HOSTS = 2000
SLICES = 4
BATCH = 100


@pytest.fixture(scope="module")
def fleet_emulator(tmp_path_factory):
    fleet = tmp_path_factory.mktemp("slices") / "fleet.json"
    write_fleet(fleet, HOSTS)
    with running_emulator("--fleet", str(fleet), "--quiet", "--log-size", "100000") as running:
        yield running


def test_four_slices_at_once_send_to_every_device_exactly_once(tmp_path, fleet_emulator, postgresql, figures):
    schema = postgresql.new_schema()
    play = slices.write(str(tmp_path), ACCOUNT, "SLICED", "sliced-wave", BATCH)
    env = dict(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_REMOTE_TMP=str(tmp_path / "tmp"),
               HOME=str(tmp_path), PATH="%s:/usr/bin:/bin" % BIN, ANSIBLE_NOCOLOR="1", THINGSPACE_API_URL=fleet_emulator.url,
               THINGSPACE_LEDGER_URL=postgresql.url(), THINGSPACE_LEDGER_PASSWORD=postgresql.password, THINGSPACE_LEDGER_SCHEMA=schema,
               **{"THINGSPACE_" + name.upper(): value for name, value in CREDENTIALS.items()})
    Ledger(Database(postgresql.url(), postgresql.password, schema)).close()  # the inventory reads it too: it must exist
    fleet_emulator.reset()
    wall, results = slices.run_slices(str(tmp_path), play, str(BIN), env, slices.limits(HOSTS, SLICES), "slice")

    sent = slices.sent_devices(fleet_emulator)
    assert sent == {device(n)["id"]: 1 for n in range(HOSTS)}
    assert [result["devices_sent"] for result in results] == [HOSTS // SLICES] * SLICES
    assert sum(len(result["request_ids"]) for result in results) == HOSTS // BATCH == len(fleet_emulator.sms())
    recorded = postgresql.execute('SELECT state, count(*) FROM "%s".sends GROUP BY state' % schema)
    assert recorded == [("sent", HOSTS)]

    figures.update(hosts=HOSTS, slices=SLICES, wall_seconds=round(wall, 2), requests=HOSTS // BATCH)
