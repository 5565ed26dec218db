"""Every callback URL the documentation writes is one the collection's own source takes.

Every http(s) URL in README.md, docs/, roles/, playbooks/, extensions/ and the modules' documentation is classified
by the table NOT_CALLBACKS (URLs that are not listeners: each entry says why) or as a listener URL: a registered one
(``…/<account>/<service>``) or a public base URL of the source (``sms_callbacks_public_url``, from which the role
derives ``<base>/<account>/<service>``). A URL in neither is a failure: a new form of callback URL cannot slip by.
Each listener URL then gets the vendor's callback bodies of its service (tests/unit/callback_bodies.py), posted to its
path on loopback, to the real thingspace.m2m.callbacks source (its main(), as ansible-rulebook runs it) started with
the ``path`` the document gives (``callbacks_path``, the source's ``path``), else the URL's own prefix; each must be
answered 2xx."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from with_rulebook import free_port

from ansible_collections.thingspace.m2m.extensions.eda.plugins.event_source import callbacks
from ansible_collections.thingspace.m2m.plugins.module_utils.callbacks import SERVICE_NAMES

from callback_bodies import ACCOUNT, SEED, device_sms

ROOT = Path(__file__).resolve().parents[2]
TREES = ("README.md", "docs", "roles", "playbooks", "extensions", "plugins/modules")
URL = re.compile(r"https?://[^\s\"'`<>()|,;\\]*")
ECS, SDC = "EnhancedConnectivityService", "SMSDeliveryConfirmation"
SEED_CREDENTIALS = {"username": SEED["sms_sent"]["username"], "password": SEED["sms_sent"]["password"]}
# The bodies of each service the source takes: the vendor's examples, and a device SMS.
BODIES = {
    ECS: {"sms_sent": SEED["sms_sent"], "request_complete": SEED["request_complete"], "device_sms": device_sms(**SEED_CREDENTIALS)},
    SDC: {name: body for name, body in SEED.items() if name.startswith("sms_delivery_")},
}

# URLs that are not callback listeners: (what, why, test on the URL and the text around it).
NOT_CALLBACKS = (
    ("licence", "the GPL's address in a file header", lambda url, near: url.startswith("https://www.gnu.org/licenses/")),
    ("link", "a link to documentation", lambda url, near: urlsplit(url).hostname in ("github.com", "docs.ansible.com", "pypi.org")),
    ("vendor", "ThingSpace itself (the API's base URL, its documentation): the server, never a listener",
     lambda url, near: urlsplit(url).hostname in ("thingspace.verizon.com", "ThingSpace.Verizon.com")),
    ("scheme", "a scheme named in prose (http://, http://...), no address", lambda url, near: urlsplit(url).hostname in (None, "")),
    ("emulator API", "the emulator's own address (THINGSPACE_API_URL, the line it prints)",
     lambda url, near: re.fullmatch(r"http://127\.0\.0\.1:(8780|PORT)", url) is not None and ("THINGSPACE_API_URL=" in near or "listening on" in near)),
    ("emulator listener", "the emulator's built-in recording listener (_emulator/listener/<name>), another receiver than the source",
     lambda url, near: "/_emulator/listener/" in url),
    ("API URL", "an api_url (where sends go, the ledger's scope) named as such: a URL without a path, never a listener",
     lambda url, near: urlsplit(url).path in ("", "/") and re.search(r"api_url|API URL", near) is not None),
    ("repository", "a Git repository (an EDA controller project's), where rulebooks come from",
     lambda url, near: url.endswith(".git")),
)
# The text around a URL that makes it a base URL under which the source takes <account>/<service>: the source's
# public URL, or where a reverse proxy passes the callbacks to.
BASE = re.compile(r"public_url|public base URL|THINGSPACE_CALLBACKS_URL|proxy_pass")
# How a document gives the source's path: `callbacks_path: /x`, `path: /x`, ``path`` set to ``/x``, path=/x.
STATED_PATH = re.compile(r"\b(?:callbacks_)?path(?:``)?(?:\s*[:=]\s*|\s+set to\s+)(?:``)?[\"']?(/[\w./-]*)")


def documents():
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", *TREES], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in sorted(set(listed.stdout.split())):
        path = ROOT / name
        if path.is_file() and path.suffix in (".md", ".rst", ".yml", ".yaml", ".py", ".j2", ".cfg", ".txt", ".sh", ""):
            yield name, path.read_text(encoding="utf-8")


def classify(text):
    """(listener URLs [(line, url, kind)], not listeners [(line, url, what)], unclassified [(line, url)]) of a document."""
    lines = text.splitlines()
    listeners, others, unknown = [], [], []
    for number, line in enumerate(lines, 1):
        for match in URL.finditer(line):
            url = match.group().rstrip(".:")
            near = "\n".join(lines[max(0, number - 3):number])
            what = next((name for name, _why, test in NOT_CALLBACKS if test(url, near)), None)
            if what:
                others.append((number, url, what))
            elif BASE.search(near):
                listeners.append((number, url, "base"))
            elif urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] in SERVICE_NAMES or "callback_url" in line or re.search(r"\burl:", line):
                listeners.append((number, url, "registered"))
            else:
                unknown.append((number, url))
    return listeners, others, unknown


def targets(said, url, kind):
    """[(source path, path to post to, service)] of one listener URL of a document that says ``said``."""
    path = urlsplit(url).path.rstrip("/")
    stated = [given.rstrip("/") or "/" for given in STATED_PATH.findall(said)]
    if kind == "base":
        base, posts = path, [("%s/%s/%s" % (path, ACCOUNT, service), service) for service in (ECS, SDC)]
    else:
        base, posts = path.rsplit("/", 2)[0] if path.count("/") >= 2 else "", [(path, path.rsplit("/", 1)[-1])]
    # The longest path the document gives that the URL is under; else the URL's own.
    source_path = max((given for given in stated if (path + "/").startswith(given.rstrip("/") + "/")), key=len, default=base or "/")
    return [(source_path, post_path, service) for post_path, service in posts]


def prose(document, text):
    """What a document says: a Python file's DOCUMENTATION, EXAMPLES and RETURN (its code sets other paths)."""
    if not document.endswith(".py"):
        return text
    return "\n".join(re.findall(r'^(?:DOCUMENTATION|EXAMPLES|RETURN) = r?"""(.*?)"""', text, re.MULTILINE | re.DOTALL))


async def post_all(checks):
    """Start one source per source path, post each check's bodies; [(document, line, url, body name, status, answer)] refused."""
    sources, refused = {}, []
    try:
        for source_path in sorted({check[3] for check in checks}):
            port = free_port()
            args = {"port": port, "check_port": False, "path": source_path, "store": "memory", **SEED_CREDENTIALS}
            sources[source_path] = (port, asyncio.create_task(callbacks.main(asyncio.Queue(), args)))
        for port, task in sources.values():
            await wait_listening(port, task)
        async with aiohttp.ClientSession() as session:
            for document, line, url, source_path, post_path, service in checks:
                for name, body in BODIES.get(service, {"sms_sent": SEED["sms_sent"]}).items():
                    async with session.post("http://127.0.0.1:%d%s" % (sources[source_path][0], post_path), json=body) as response:
                        if not 200 <= response.status < 300:
                            refused.append((document, line, url, source_path, name, response.status, (await response.text()).strip()))
    finally:
        for _port, task in sources.values():
            task.cancel()
        await asyncio.gather(*(task for _port, task in sources.values()), return_exceptions=True)
    return refused


async def wait_listening(port, task):
    for _attempt in range(250):
        if task.done():
            task.result()
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError("the source did not listen on port %d" % port)


def test_every_callback_url_written_is_taken_by_the_source(monkeypatch, tmp_path):
    monkeypatch.setenv("THINGSPACE_STATE_DIR", str(tmp_path))
    checks, unknown, seen = [], [], 0
    for document, text in documents():
        listeners, others, unclassified = classify(text)
        seen += len(listeners) + len(others)
        unknown += ["%s:%d %s" % (document, line, url) for line, url in unclassified]
        for line, url, kind in listeners:
            checks += [(document, line, url, *target) for target in targets(prose(document, text), url, kind)]
    assert not unknown, "URLs that are neither a listener nor in NOT_CALLBACKS (classify them):\n" + "\n".join(unknown)
    assert seen > 20 and len(checks) > 5, "the search found %d URLs, %d listener URLs: it no longer reads the documents" % (seen, len(checks))
    refused = asyncio.run(post_all(checks))
    assert not refused, "callback URLs the source refuses:\n" + "\n".join(
        "%s:%d %s (source path %s): %s answered %d %s" % entry for entry in refused)
