"""Links of the documentation: every relative link reaches a file of the checkout (or of the built site) and every
anchor a heading or id of its target; every external link is a well-formed URL (not fetched: the checks run offline).

Checked: the Markdown files (links, images, reference definitions; not inside code), the external links of the
reStructuredText guides (Sphinx checks their references when it builds), and a built HTML site (href and src).
Markdown anchors are GitHub's heading slugs; reStructuredText anchors are docutils' section ids, as GitHub shows both.

    python tests/utils/check_links.py --html docs/build/html     # the built site (docs/build.sh runs it)
    python tests/utils/check_links.py                            # the Markdown and reStructuredText of the checkout
"""

from __future__ import annotations

import argparse
import functools
import re
import subprocess
import sys
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
SCHEMES = {"http", "https", "mailto"}
# [text](target "title"), ![alt](target): the target up to a space or the closing parenthesis (one level of nesting).
MD_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*)>?(?:\s+\"[^\"]*\")?\s*\)")
MD_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s.*)?$")
MD_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
MD_HTML_ID = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
RST_EXTERNAL = re.compile(r"`[^`<]*<([a-z][a-z0-9+.-]*:[^>`]*)>`__?")
RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+<>:._])\1{2,}\s*$")


def external_problem(url):
    """Why an absolute URL is not well-formed, or None."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        return "scheme %r is not one of %s" % (parts.scheme, ", ".join(sorted(SCHEMES)))
    if parts.scheme == "mailto":
        return None if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", parts.path) else "not an address"
    if not parts.hostname or not re.fullmatch(r"[a-z0-9.-]+|[0-9a-f:.]+", parts.hostname):
        return "no host, or a host with characters a host name cannot have"
    try:
        _port = parts.port  # urlsplit reads the port only when asked
    except ValueError:
        return "a port that is not a number"
    if re.search(r"\s", url):
        return "white space in it"
    return None


def github_slug(text):
    """The anchor GitHub gives a Markdown heading: its text without markup, lower case, punctuation dropped, spaces as -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    return "".join(c if c in "-_" or unicodedata.category(c)[0] in "LN" else "-" if c == " " else "" for c in text)


def docutils_id(text):
    """The id docutils gives a section (nodes.make_id): lower case, runs of other characters as one -."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def _unique(slugs):
    """GitHub's suffixes for repeated headings: the second x is x-1, the third x-2."""
    seen, result = {}, set()
    for slug in slugs:
        result.add(slug if slug not in seen else "%s-%d" % (slug, seen[slug]))
        seen[slug] = seen.get(slug, 0) + 1
    return result


def _without_code(lines, inline=True):
    """The lines of a Markdown file outside fenced code blocks, inline code blanked unless not ``inline``: (number, line)."""
    fence = None
    for number, line in enumerate(lines, 1):
        marker = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
        if marker:
            if fence is None:
                fence = marker.group(1)
            elif marker.group(1).startswith(fence):
                fence = None
            continue
        if fence is None:
            yield number, re.sub(r"(`+)(?:(?!\1).)+?\1", lambda match: " " * len(match.group(0)), line) if inline else line


@functools.cache
def anchors(path):
    """The anchors of a Markdown or reStructuredText file as GitHub renders it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".md":
        found = [github_slug(MD_HEADING.match(line).group(2)) for _number, line in _without_code(lines, inline=False) if MD_HEADING.match(line)]
        found += [name for _number, line in _without_code(lines) for name in MD_HTML_ID.findall(line)]
        return _unique(found)
    if path.suffix == ".rst":
        titles = [lines[i].strip() for i in range(len(lines) - 1)
                  if lines[i].strip() and RST_UNDERLINE.match(lines[i + 1]) and len(lines[i + 1].strip()) >= len(lines[i].strip())]
        labels = [match.group(1) for line in lines for match in [re.match(r"^\.\. _([^:]+):\s*$", line)] if match]
        return {docutils_id(re.sub(r"``?|:[a-z]+:", "", title)) for title in titles} | {docutils_id(label) for label in labels}
    return set()


def target_problem(source, target, root):
    """Why a link ``target`` written in the file ``source`` does not reach its file and anchor (None when it does)."""
    if urlsplit(target).scheme:
        return external_problem(target)
    path_part, _hash, anchor = target.partition("#")
    path = (source.parent / unquote(path_part)).resolve() if path_part else source
    if not path.is_relative_to(root):
        return "leaves %s" % root
    if not path.exists():
        return "no such file"
    if anchor and path.is_file() and path.suffix in (".md", ".rst") and unquote(anchor) not in anchors(path):
        return "no heading with the anchor #%s in %s" % (anchor, path.relative_to(root))
    return None


def markdown_problems(path, root=ROOT):
    """[(line, target, problem)] of a Markdown file."""
    problems = []
    for number, line in _without_code(path.read_text(encoding="utf-8").splitlines()):
        definition = MD_DEFINITION.match(line)
        targets = [definition.group(1)] if definition else MD_LINK.findall(line)
        for target in targets:
            problem = target_problem(path, target, root)
            if problem:
                problems.append((number, target, problem))
    return problems


def rst_problems(path):
    """[(line, target, problem)] of the external links of a reStructuredText file."""
    problems = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for target in RST_EXTERNAL.findall(line):
            problem = external_problem(target)
            if problem:
                problems.append((number, target, problem))
    return problems


class _Page(HTMLParser):
    """The ids and the links (href, src) of an HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(name):
                self.ids.add(attrs[name])
        for name in ("href", "src"):
            if attrs.get(name) is not None and not (tag == "link" and attrs.get("rel") in ("preconnect", "dns-prefetch")):
                self.links.append((self.getpos()[0], attrs[name]))


def html_problems(site):
    """[(page, line, target, problem)] of a built HTML site: links to its own pages and their ids, external URLs well-formed."""
    site = Path(site).resolve()
    pages = {}
    for page in sorted(site.rglob("*.html")):
        parsed = _Page()
        parsed.feed(page.read_text(encoding="utf-8"))
        pages[page] = parsed
    if not pages:
        return [(site, 0, "", "no HTML page: the site was not built")]
    problems = []
    for page, parsed in pages.items():
        for line, target in parsed.links:
            parts = urlsplit(target)
            if parts.scheme in ("javascript", "data"):
                continue
            if parts.scheme or target.startswith("//"):
                problem = external_problem(target if parts.scheme else "https:" + target)
            elif not parts.path:
                problem = None if not parts.fragment or unquote(parts.fragment) in parsed.ids else "no id #%s on the page" % parts.fragment
            else:
                # A path from / (the theme's logo) is the site's, served at the root of its host.
                base = site if parts.path.startswith("/") else page.parent
                path = (base / unquote(parts.path).lstrip("/")).resolve()
                if path.is_dir():
                    path = path / "index.html"
                if not path.is_relative_to(site):
                    problem = "leaves the site"
                elif not path.exists():
                    problem = "no such file"
                elif parts.fragment and path in pages and unquote(parts.fragment) not in pages[path].ids:
                    problem = "no id #%s in %s" % (parts.fragment, path.relative_to(site))
                else:
                    problem = None
            if problem:
                problems.append((page.relative_to(site), line, target, problem))
    return problems


def documents(root=ROOT):
    """The tracked Markdown and reStructuredText files of the checkout."""
    listed = subprocess.run(["git", "ls-files", "*.md", "*.rst"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    return [root / name for name in listed if (root / name).exists()]


def checkout_problems(root=ROOT):
    """["file:line: target: problem"] of the checkout's documents."""
    found = []
    for path in documents(root):
        problems = markdown_problems(path, root) if path.suffix == ".md" else rst_problems(path)
        found += ["%s:%d: %s: %s" % (path.relative_to(root), line, target, problem) for line, target, problem in problems]
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--html", metavar="DIR", help="check the built site in DIR instead of the checkout's documents")
    args = parser.parse_args()
    if args.html:
        found = ["%s:%d: %s: %s" % problem for problem in html_problems(args.html)]
        what = "links of %s" % args.html
    else:
        found = checkout_problems()
        what = "links of the Markdown and reStructuredText files"
    for line in found:
        print(line)
    if found:
        sys.exit("check_links.py: %d problem(s) with the %s" % (len(found), what))
    print("check_links.py: %s all reach their target" % what)


if __name__ == "__main__":
    main()
