# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The environment variables behind options, one table: the modules' fallbacks and the messages that name
them read it. The doc fragments list the same names literally (ansible-doc reads them as text); a unit test
keeps the two in step."""

from __future__ import annotations

ENV_VARS = {
    option: "THINGSPACE_" + option.upper()
    for option in (
        "api_url",
        "client_id",
        "client_secret",
        "username",
        "password",
        "access_token",
        "session_token",
        "state_dir",
        "ledger_path",
        "ledger_url",
        "ledger_password",
        "ledger_schema",
    )
}


def env_hint(*options):
    """``"(env THINGSPACE_A, THINGSPACE_B)"`` for messages that tell where an option can come from."""
    return "(env %s)" % ", ".join(ENV_VARS[option] for option in options)
