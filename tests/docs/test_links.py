"""The documentation's links (tests/utils/check_links.py): those of the checkout here, in seconds; docs/build.sh checks
the built site's with the same code. The checker is tried on small files that hold each kind of broken link."""

from __future__ import annotations

import textwrap

import check_links
import pytest


def test_every_link_of_the_markdown_and_rst_files_reaches_its_target():
    assert check_links.checkout_problems() == []


def test_the_checkout_has_links_to_check():
    """The check reads the files the README and the docs index link to (an empty list would pass any check)."""
    names = {str(path.relative_to(check_links.ROOT)) for path in check_links.documents()}
    assert {"README.md", "docs/README.md", "docs/design.md", "docs/performance.md", "docs/reliability.md"} <= names
    assert any(name.startswith("docs/docsite/rst/guide_") for name in names)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_markdown_links_files_and_headings_as_github_names_them(tmp_path):
    write(tmp_path / "docs" / "other.md", """\
        # Other
        ## 8. A staged campaign
        ### `campaign.py` (issue 21)
        ## Twice
        ## Twice
        """)
    write(tmp_path / "docs" / "guide.rst", """\
        The ledger on PostgreSQL
        ------------------------
        """)
    page = write(tmp_path / "README.md", """\
        [ok](docs/other.md#8-a-staged-campaign) [ok](docs/other.md#campaignpy-issue-21) [ok](docs/other.md#twice-1)
        [ok](docs/guide.rst#the-ledger-on-postgresql) [ok](#a-heading) ![ok](docs/) [ok](https://example.com/a_b?c=1#d)

        ## A heading

        [missing file](docs/gone.md) [missing heading](docs/other.md#8-staged-campaign) [third twice](docs/other.md#twice-2)
        [outside](../elsewhere.md) [not a URL](htps:/example.com) [no host](https:///path) [local](#no-such-heading)

        [defined]: docs/gone-too.md

        ```sh
        [in code](docs/gone.md) is not a link
        ```
        `[inline code](docs/gone.md)` neither
        """)
    found = [(line, target) for line, target, _problem in check_links.markdown_problems(page, tmp_path)]
    assert found == [(6, "docs/gone.md"), (6, "docs/other.md#8-staged-campaign"), (6, "docs/other.md#twice-2"),
                     (7, "../elsewhere.md"), (7, "htps:/example.com"), (7, "https:///path"), (7, "#no-such-heading"),
                     (9, "docs/gone-too.md")]


@pytest.mark.parametrize("url, problem", [
    ("https://docs.ansible.com/projects/ansible/latest/", None),
    ("http://127.0.0.1:8780/api", None),
    ("http://[::1]:9002/thingspace", None),
    ("mailto:ops@example.com", None),
    ("ftp://example.com/", "scheme 'ftp' is not one of http, https, mailto"),
    ("https://exa mple.com/", "no host, or a host with characters a host name cannot have"),
    ("https://example.com:80x/", "a port that is not a number"),
    ("https://example.com/a b", "white space in it"),
    ("mailto:nobody", "not an address"),
])
def test_an_external_url_must_be_well_formed(url, problem):
    assert check_links.external_problem(url) == problem


def test_rst_external_links_are_checked(tmp_path):
    page = write(tmp_path / "guide.rst", """\
        See `the docs <https://docs.ansible.com/>`_ and `a typo <htttps://example.com>`__.
        """)
    assert check_links.rst_problems(page) == [(1, "htttps://example.com", "scheme 'htttps' is not one of http, https, mailto")]


def test_a_built_site_links_its_pages_and_their_ids(tmp_path):
    write(tmp_path / "index.html", """\
        <a href="/">home</a> <a href="guide.html#setup">ok</a> <a href="#top" id="top">ok</a>
        <img src="_static/logo.png"> <a href="https://docs.ansible.com/">ok</a>
        <a href="guide.html#gone">missing id</a> <a href="gone.html">missing page</a> <a href="#nowhere">missing id here</a>
        <a href="../outside.html">outside</a> <a href="https://bad host/">bad URL</a>
        """)
    write(tmp_path / "guide.html", '<h2 id="setup">Setup</h2>\n')
    write(tmp_path / "_static" / "logo.png", "")
    found = [(str(page), line, target) for page, line, target, _problem in check_links.html_problems(tmp_path)]
    assert found == [("index.html", 3, "guide.html#gone"), ("index.html", 3, "gone.html"), ("index.html", 3, "#nowhere"),
                     ("index.html", 4, "../outside.html"), ("index.html", 4, "https://bad host/")]


def test_a_site_without_pages_is_not_taken_for_one_without_broken_links(tmp_path):
    assert check_links.html_problems(tmp_path / "html") == [((tmp_path / "html").resolve(), 0, "", "no HTML page: the site was not built")]
