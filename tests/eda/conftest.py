"""tests/utils on the path: with_rulebook.py, which starts the rulebook for make demo, starts it for these tests too."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "utils"))

from time_limit import time_limit

# Generous: the slowest test, the rulebook end to end, takes about 20 s.
pytest_collection_modifyitems = time_limit(__file__, 300)
