"""Timestamps as the emulator writes them: ISO 8601 with a UTC offset."""

from datetime import datetime, timezone


def now_iso() -> str:
    """Now, UTC, to the millisecond (admin API and logs)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def local_iso() -> str:
    """Now, local time with its offset, to the second (the vendor's MO SMS timestamps)."""
    return datetime.now().astimezone().isoformat(timespec="seconds")
