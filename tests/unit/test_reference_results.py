"""The page "What the collection tells you" (docs/docsite/rst/reference_results.rst) names every field each module's
RETURN documents, and names no field that a module does not return."""

from __future__ import annotations

import re
from pathlib import Path

from returned_keys import MODULES, documented

PAGE = Path(__file__).resolve().parents[2] / "docs" / "docsite" / "rst" / "reference_results.rst"


def sections():
    """title → text of each section of the page (a title underlined with dashes)."""
    parts = re.split(r"^(.+)\n-+\n", PAGE.read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def field_rows(text):
    """The first cells of the rows of tables whose first column is headed Field: (the fields in double backquotes, the
    module named in brackets or None)."""
    rows = []
    for table in re.findall(r"\* - Field.*?(?=\n\S|\Z)", text, flags=re.S):
        for cell in re.findall(r"^  \* - (.+)$", table, flags=re.M)[1:]:
            named = re.search(r"\((vz_\w+)\)$", cell)
            rows.append((re.findall(r"``(\w+)``", cell), named.group(1) if named else None))
    return rows


def test_every_module_has_a_section_that_names_each_field_it_returns():
    pages = sections()
    for path in sorted(MODULES.glob("vz_*.py")):
        module = path.stem
        text = "".join(body for title, body in pages.items() if module in title.split())
        assert text, "%s has no section" % module
        missing = sorted(key for key in documented(module) if "``%s``" % key not in text)
        assert not missing, "%s: %s" % (module, missing)


def test_every_field_the_page_lists_is_returned_by_its_module():
    for title, text in sections().items():
        modules = [word for word in title.split() if word.startswith("vz_")]
        for fields, named in field_rows(text):
            owners = [named] if named else modules
            for field in fields:
                assert any(field in documented(module) for module in owners), "%s: %s is in no RETURN of %s" % (title, field, owners)
