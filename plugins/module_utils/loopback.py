# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which hosts are loopback: the one rule behind plain http to ``api_url``, to a callback listener and on the
callbacks source's address (elsewhere secrets would cross the network in clear)."""

from __future__ import annotations

import ipaddress


def is_loopback(host):
    """True for localhost, 127.0.0.0/8 and ::1 (``host`` as urlsplit gives it: lower case, no brackets)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
