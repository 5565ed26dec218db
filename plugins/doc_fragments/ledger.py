# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The ledger option (module_utils/module.py LEDGER_ARGUMENT_SPEC).
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
    type: path
"""
