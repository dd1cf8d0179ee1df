"""IANA time zones by name, as callers send them."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(name: str) -> ZoneInfo | None:
    """The IANA time zone `name` (empty: UTC), or None when there is no such zone. Never an
    error for what a caller sent: a name too long for a file path (OSError), one with a NUL
    byte or climbing out of the zone directory (ValueError) are no zone."""
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
