"""The doc tests: the collection (through .collections), tests/utils and the callback bodies of tests/unit on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# `make venv` links the checkout as .collections/ansible_collections/thingspace/m2m.
sys.path.insert(0, str(ROOT / ".collections"))
sys.path.insert(0, str(ROOT / "tests" / "utils"))
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from time_limit import time_limit  # noqa: E402

# Generous: a guide runs its playbooks one after the other (the longest, the callbacks guide, about 10 s).
pytest_collection_modifyitems = time_limit(__file__, 600)
