# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ThingSpaceModule: the base of every module. It owns the common options (auth, transport, token cache),
checks the options, the credentials and the Python requirements when it starts, builds the client, and
turns a ThingSpaceError into one fail_json. Those steps are ThingSpaceTask's, which the controller's stand-in for
a module (plugins/plugin_utils/controller.py) shares.

requests and pydantic are only looked for at the start; the client imports them on its first request, so a
task that makes none (a re-run with nothing to send, a check-mode preview of a device list) does not pay
for them."""

from __future__ import annotations

from importlib.util import find_spec
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.thingspace.m2m.plugins.module_utils.auth import Credentials, TokenCache, credentials_problem
from ansible_collections.thingspace.m2m.plugins.module_utils.client import ThingSpaceClient
from ansible_collections.thingspace.m2m.plugins.module_utils.env import ENV_VARS
from ansible_collections.thingspace.m2m.plugins.module_utils.errors import ThingSpaceError
from ansible_collections.thingspace.m2m.plugins.module_utils.loopback import is_loopback
from ansible_collections.thingspace.m2m.plugins.module_utils.private_files import DEFAULT_STATE_DIR, LEDGER_NAME, TOKEN_CACHE_NAME, state_path
from ansible_collections.thingspace.m2m.plugins.module_utils.sms import check_name

DEFAULT_API_URL = "https://thingspace.verizon.com"
# The Python libraries a request needs (requirements.txt).
REQUIRED_LIBRARIES = ("requests", "pydantic")
# Options of the modules that name something in ThingSpace, matched exactly by the API.
NAME_OPTIONS = ("account_name", "group_name", "service_plan")
# Longer list options are cut to this many entries in the result's invocation (a 100,000-device list would be
# echoed back whole, megabytes for the controller to parse).
INVOCATION_LIST_LIMIT = 20


def _env(option):
    return (env_fallback, [ENV_VARS[option]])


# Documented once in plugins/doc_fragments/connection.py.
COMMON_ARGUMENT_SPEC = dict(
    api_url=dict(type="str", default=DEFAULT_API_URL, fallback=_env("api_url")),
    client_id=dict(type="str", no_log=False, fallback=_env("client_id")),
    client_secret=dict(type="str", no_log=True, fallback=_env("client_secret")),
    username=dict(type="str", fallback=_env("username")),
    password=dict(type="str", no_log=True, fallback=_env("password")),
    access_token=dict(type="str", no_log=True, fallback=_env("access_token")),
    session_token=dict(type="str", no_log=True, fallback=_env("session_token")),
    validate_certs=dict(type="bool", default=True),
    allow_insecure_http=dict(type="bool", default=False),
    timeout=dict(type="float", default=30.0),
    retries=dict(type="int", default=4),
    token_cache=dict(type="bool", default=True),
    state_dir=dict(type="path", default=DEFAULT_STATE_DIR, fallback=_env("state_dir")),
)

# Documented once in plugins/doc_fragments/ledger.py.
LEDGER_ARGUMENT_SPEC = dict(
    ledger_path=dict(type="path", fallback=_env("ledger_path")),
    # no_log: the URL may hold the password.
    ledger_url=dict(type="str", no_log=True, fallback=_env("ledger_url")),
    ledger_password=dict(type="str", no_log=True, fallback=_env("ledger_password")),
    ledger_schema=dict(type="str", default="thingspace", fallback=_env("ledger_schema")),
)

# Documented once in plugins/doc_fragments/listener.py.
LISTENER_ARGUMENT_SPEC = dict(
    callback_username=dict(type="str"),
    callback_password=dict(type="str", no_log=True),
)


def check_ledger_options(module):
    """The checks of a PostgreSQL ledger at start, before any request: the URL's password joins the values Ansible
    masks in output, the URL and the schema name are checked, and psycopg looked for (imported only to connect)."""
    url = module.params.get("ledger_url")
    if not url:
        return
    from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import schema_problem, url_problem, url_secrets

    module.no_log_values.update(url_secrets(url, module.params["ledger_password"]))
    problem = url_problem(url) or schema_problem(module.params["ledger_schema"])
    if problem:
        module.fail_json(msg=problem)
    if find_spec("psycopg") is None:
        module.fail_json(msg=missing_required_lib("psycopg", reason="for the PostgreSQL ledger (ledger_url)"))


def run_ledger_module(module, action):
    """exit_json with ``action(module)``'s result, for a module that uses only the ledger (an AnsibleModule without
    ThingSpace options): its ledger options are checked first, and a ThingSpaceError becomes one fail_json."""
    check_ledger_options(module)
    try:
        result = action(module)
    except ThingSpaceError as error:
        module.fail_json(msg=error.message, **error.to_result())
    module.exit_json(**result)


def ledger_location(params):
    """Where the ledger is, as ``Ledger`` takes it: a ``_store_postgresql.Database`` when ledger_url is set, else
    the SQLite file (ledger_path, or ledger.sqlite3 in state_dir)."""
    if params.get("ledger_url"):
        from ansible_collections.thingspace.m2m.plugins.module_utils._store_postgresql import Database

        return Database(params["ledger_url"], params["ledger_password"], params["ledger_schema"])
    return params.get("ledger_path") or state_path(params["state_dir"], LEDGER_NAME)


def full_argument_spec(argument_spec):
    """A module's argument spec with the common options."""
    spec = dict(COMMON_ARGUMENT_SPEC)
    spec.update(argument_spec)
    return spec


class ThingSpaceTask:
    """What a task of the collection does however it runs: the checks at start, the client, the result. The
    subclass provides what AnsibleModule does: ``params`` (validated), ``check_mode``, ``no_log_values``, ``warn``,
    ``exit_json`` and ``fail_json`` (neither returns)."""

    def _start(self):
        """The checks at start, after the argument spec; builds ``self.client``."""
        check_ledger_options(self)
        url = urlsplit(self.params["api_url"])
        if url.scheme not in ("http", "https") or not url.netloc:
            self.fail_json(msg="api_url: %r is not an http(s) URL such as %s" % (self.params["api_url"], DEFAULT_API_URL))
        if url.scheme == "http" and not is_loopback(url.hostname) and not self.params["allow_insecure_http"]:
            self.fail_json(msg="api_url: %r is plain http to a host that is not loopback, so client_secret, password and the tokens would "
                               "cross the network in clear; use https, or set allow_insecure_http: true for a network you trust" % self.params["api_url"])
        if self.params["retries"] < 0 or self.params["timeout"] <= 0:
            self.fail_json(msg="retries must be 0 or more and timeout more than 0")
        try:
            for option in NAME_OPTIONS:
                check_name(option, self.params.get(option))
        except ValueError as exc:
            self.fail_json(msg=str(exc))
        p = self.params
        credentials = Credentials(p["client_id"], p["client_secret"], p["username"], p["password"], p["access_token"], p["session_token"])
        problem = credentials_problem(credentials)
        if problem:
            self.fail_json(msg="Missing credentials: " + problem)
        for library in REQUIRED_LIBRARIES:
            if find_spec(library) is None:
                self.fail_json(msg=missing_required_lib(library))
        cache = TokenCache(state_path(p["state_dir"], TOKEN_CACHE_NAME)) if p["token_cache"] else None
        self.client = ThingSpaceClient(self.api_url, credentials, token_cache=cache, timeout=p["timeout"], retries=p["retries"],
                                       validate_certs=p["validate_certs"])

    @property
    def api_url(self):
        return self.params["api_url"].rstrip("/")

    @property
    def ledger_location(self):
        return ledger_location(self.params)

    def run(self, action):
        """exit_json with ``action(self)``'s result; a ThingSpaceError becomes one fail_json.

        ``action`` may return ``(result, failure message)`` to fail with the result attached; the result's
        ``warnings`` are shown as Ansible warnings."""
        try:
            outcome = action(self)
        except ThingSpaceError as error:
            self.fail_json(msg=error.message, invocation=self._invocation(), **error.to_result())
        result, failure = outcome if isinstance(outcome, tuple) else (outcome, None)
        for warning in result.pop("warnings", ()):
            self.warn(warning)
        result["invocation"] = self._invocation()
        if failure:
            self.fail_json(**dict(result, msg=failure))
        self.exit_json(**result)

    def _invocation(self):
        """The module arguments as Ansible reports them, secrets masked and long lists cut."""
        args = {}
        for name, value in self.params.items():
            if isinstance(value, list) and len(value) > INVOCATION_LIST_LIMIT:
                value = [*value[:INVOCATION_LIST_LIMIT], "... %d more" % (len(value) - INVOCATION_LIST_LIMIT)]
            args[name] = value
        return {"module_args": remove_values(args, self.no_log_values)}


class ThingSpaceModule(ThingSpaceTask, AnsibleModule):
    def __init__(self, argument_spec, **kwargs):
        super().__init__(argument_spec=full_argument_spec(argument_spec), **kwargs)
        self._start()
