# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The common options of every module (module_utils/module.py COMMON_ARGUMENT_SPEC).
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - Base URL of the ThingSpace API. Point it at a local C(thingspace-emulator) to test offline.
      - Redirects are not followed, because the session token would go along; an answer that redirects fails the
        task naming where it points.
      - If not set, the environment variable E(THINGSPACE_API_URL) is used.
    type: str
    default: https://thingspace.verizon.com
  allow_insecure_http:
    description:
      - Allow an O(api_url) with plain C(http) to a host that is not loopback (C(localhost), C(127.0.0.0/8), C(::1)).
        Over plain C(http), O(client_secret), O(password) and the tokens cross the network in clear.
      - Off by default, so such an O(api_url) fails the task before any connection is made. Loopback, where the
        C(thingspace-emulator) runs, needs no opt-in.
    type: bool
    default: false
  client_id:
    description:
      - Application key of the ThingSpace OAuth client, used to get the bearer token.
      - If not set, the environment variable E(THINGSPACE_CLIENT_ID) is used.
      - Needed unless O(access_token) is given.
    type: str
  client_secret:
    description:
      - Application secret of the ThingSpace OAuth client.
      - If not set, the environment variable E(THINGSPACE_CLIENT_SECRET) is used.
    type: str
  username:
    description:
      - ThingSpace (UWS) user that logs in to get the VZ-M2M session token.
      - If not set, the environment variable E(THINGSPACE_USERNAME) is used.
      - Needed unless O(session_token) is given.
    type: str
  password:
    description:
      - Password of O(username).
      - If not set, the environment variable E(THINGSPACE_PASSWORD) is used.
      - A refused login is never retried, because five consecutive failed logins lock the user's account.
    type: str
  access_token:
    description:
      - A pre-issued OAuth bearer token, used instead of logging in with O(client_id) and O(client_secret).
      - If not set, the environment variable E(THINGSPACE_ACCESS_TOKEN) is used.
      - When it is rejected and O(client_id)/O(client_secret) are set, a new one is fetched once.
    type: str
  session_token:
    description:
      - A pre-issued VZ-M2M session token, used instead of logging in with O(username) and O(password).
      - If not set, the environment variable E(THINGSPACE_SESSION_TOKEN) is used.
      - When the API says it expired and O(username)/O(password) are set, the module logs in once and repeats the call.
    type: str
  validate_certs:
    description:
      - Whether to verify the TLS certificate of O(api_url). Only turn it off for a test host you control.
      - The certificates are checked against the CA bundle in E(REQUESTS_CA_BUNDLE) or E(CURL_CA_BUNDLE) when set (a
        private CA belongs there), else that of the C(certifi) package. V(false) turns the check off even when
        these variables are set.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for a connection and for each answer.
    type: float
    default: 30
  retries:
    description:
      - How many times a call is repeated after a transient failure (connection error, HTTP 429 honouring
        C(Retry-After), HTTP 502/503/504), with jittered exponential backoff.
      - A send (C(POST /sms)) or a login is repeated only when it certainly did not reach the service
        (connection refused, HTTP 429, HTTP 503 with C(Retry-After)). Any other failure after it was sent is
        reported as unconfirmed and never repeated automatically.
    type: int
    default: 4
  token_cache:
    description:
      - Keep the OAuth and session tokens in a C(0600) file under O(state_dir), so the tasks of a play (and
        parallel forks) log in once instead of once per task.
      - Turn it off to log in in every task and keep no token on disk.
    type: bool
    default: true
  state_dir:
    description:
      - Directory (created C(0700)) for the token cache and the default ledger.
      - If not set, the environment variable E(THINGSPACE_STATE_DIR) is used.
      - It and the files in it must belong to the user running the module and must not be symbolic links; the files
        must not be open to group or others, the directory not writable by them. A state path that breaks this fails
        the task before any request and is not repaired; the message names it and the C(chmod) to run.
    type: path
    default: ~/.ansible/thingspace
notes:
  - Every module talks to the API from the host it runs on; run it on C(localhost) (or delegate to it).
  - Account names are strings with leading zeros (for example V(0000123456-00001)). Quote them in YAML;
    an account name such as V(0123456789) written without quotes loses its leading zero before the module
    sees it, and the module cannot detect that.
  - The C(thingspace-emulator) package (in the collection's C(emulator/) folder) is a local ThingSpace for
    tests and demos; see the collection's C(docs/emulator.md).
requirements:
  - python >= 3.9
  - requests >= 2.25
  - pydantic >= 2.0
"""

    # The environment variables of the common options for plugins (the inventory plugin), which read them through ``env``
    # entries; merged with DOCUMENTATION above (thingspace.m2m.connection.plugin).
    PLUGIN = r"""
options:
  api_url:
    env:
      - name: THINGSPACE_API_URL
  client_id:
    env:
      - name: THINGSPACE_CLIENT_ID
  client_secret:
    env:
      - name: THINGSPACE_CLIENT_SECRET
  username:
    env:
      - name: THINGSPACE_USERNAME
  password:
    env:
      - name: THINGSPACE_PASSWORD
  access_token:
    env:
      - name: THINGSPACE_ACCESS_TOKEN
  session_token:
    env:
      - name: THINGSPACE_SESSION_TOKEN
  state_dir:
    env:
      - name: THINGSPACE_STATE_DIR
"""
