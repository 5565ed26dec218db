# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test only: records the keys of every thingspace.m2m module result (loop items one by one) into
tests/output/returned_keys/ of the collection it runs from, for tests/utils/returned_keys.py. `make integration`
names this directory in the integration config; it is no plugin of the collection (Ansible finds none under tests/)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: returned_keys
short_description: Records the keys thingspace.m2m modules return (tests only)
description: Records the keys thingspace.m2m modules return, for the check of RETURN against what the modules return.
type: aggregate
"""

RECORDS = Path(__file__).resolve().parents[2] / "output" / "returned_keys" / "integration"
COLLECTION = "thingspace.m2m."


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "returned_keys"
    CALLBACK_NEEDS_ENABLED = False

    def _record(self, result, failed):
        action = result._task.resolved_action or ""
        if not action.startswith(COLLECTION):
            return
        RECORDS.mkdir(parents=True, exist_ok=True)
        with open(RECORDS / ("run-%d.jsonl" % os.getpid()), "a") as out:
            out.write(json.dumps({"module": action[len(COLLECTION):], "keys": sorted(result._result), "failed": failed}) + "\n")

    def v2_runner_on_ok(self, result):
        if not result._task.loop:
            self._record(result, False)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not result._task.loop:
            self._record(result, True)

    def v2_runner_item_on_ok(self, result):
        self._record(result, False)

    def v2_runner_item_on_failed(self, result):
        self._record(result, True)
