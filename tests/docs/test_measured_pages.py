"""docs/performance.md and docs/reliability.md are concise pages of current figures, how to reproduce them and what they
mean, at most about 200 lines each; their history is in git and the changelog. docs/performance.md is what
benchmarks/report.py writes from the figures of one run, benchmarks/performance.json (`make bench`), never a page
edited by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 200


@pytest.mark.parametrize("page", ["docs/performance.md", "docs/reliability.md"])
def test_a_page_of_measured_figures_is_at_most_200_lines(page):
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    assert len(lines) <= LIMIT, "%s has %d lines: keep the current figures, what they mean and how to reproduce them" % (page, len(lines))


def test_the_performance_page_is_what_report_py_writes_from_the_figures_beside_it():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import report
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    results = json.loads((ROOT / "benchmarks" / "performance.json").read_text(encoding="utf-8"))
    page = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    assert page == report.markdown(results, "performance.png"), (
        "docs/performance.md is not what benchmarks/report.py writes from benchmarks/performance.json: "
        "write it with `benchmarks/run.py --from-json benchmarks/performance.json --report docs/performance.md`")
