# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The ledger options (module_utils/module.py LEDGER_ARGUMENT_SPEC).
    DOCUMENTATION = r"""
options:
  ledger_path:
    description:
      - SQLite file that records what was sent and started, so re-runs do not repeat it.
      - If not set, the environment variable E(THINGSPACE_LEDGER_PATH) is used, then C(ledger.sqlite3) in O(state_dir).
      - The file is created C(0600) in a C(0700) directory. Share it between the runs that must not repeat each
        other (for example a persistent volume in AWX); a fresh ledger knows of no earlier send.
      - It is checked like the files in O(state_dir), and also refused when it is empty (0 bytes) or cannot be read
        whole (damaged or truncated); the task fails before anything is sent, naming the file.
      - Not used when O(ledger_url) is set.
    type: path
  ledger_url:
    description:
      - PostgreSQL database that holds the ledger instead of the file of O(ledger_path), so that runs on several
        controllers, in fresh containers (AWX, Automation Platform) or on CI runners never repeat each other.
      - If not set, the environment variable E(THINGSPACE_LEDGER_URL) is used.
      - A libpq URL, V(postgresql://user@host:5432/dbname). libpq parameters follow C(?), such as
        C(sslmode=verify-full&sslrootcert=/etc/pki/db-ca.pem) for TLS; C(connect_timeout) is 10 seconds unless the
        URL sets it. A database that cannot be reached fails the task before any request, naming the host.
      - The password comes from the URL, O(ledger_password), or libpq's E(PGPASSWORD) or E(PGPASSFILE). It is never
        shown in results, messages or the ledger.
      - The tables are created in O(ledger_schema) on first use. A run that is sending holds an advisory lock of its
        session for each batch, so other runs on any host leave that batch to it, and the server frees the lock when
        the run dies. Connect directly, or through a pooler in session mode (a transaction-mode pooler loses the locks).
      - Needs the Python library C(psycopg) (version 3) where the module runs.
    type: str
  ledger_password:
    description:
      - Password of the O(ledger_url) database user, when the URL has none.
      - If not set, the environment variable E(THINGSPACE_LEDGER_PASSWORD) is used, then libpq's own E(PGPASSWORD) and E(PGPASSFILE).
    type: str
  ledger_schema:
    description:
      - Schema of the ledger's tables in the O(ledger_url) database; one schema is one ledger.
      - If not set, the environment variable E(THINGSPACE_LEDGER_SCHEMA) is used, then V(thingspace).
      - Created on first use when the user may create schemas in the database; otherwise an administrator creates it
        once, owned by that user (see the guide "Keep the ledger in PostgreSQL").
    type: str
    default: thingspace
requirements:
  - psycopg >= 3 (only for ledger_url)
"""

    # The environment variables of the ledger options for plugins (the inventory plugin), which read them through ``env``
    # entries; merged with DOCUMENTATION above (thingspace.m2m.ledger.plugin).
    PLUGIN = r"""
options:
  ledger_path:
    env:
      - name: THINGSPACE_LEDGER_PATH
  ledger_url:
    env:
      - name: THINGSPACE_LEDGER_URL
  ledger_password:
    env:
      - name: THINGSPACE_LEDGER_PASSWORD
  ledger_schema:
    env:
      - name: THINGSPACE_LEDGER_SCHEMA
"""
