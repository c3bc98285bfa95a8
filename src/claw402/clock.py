"""The one clock: every stored time is UTC, and SQLite hands datetimes back naive."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """`value` as UTC-aware: SQLite returns naive datetimes, and every time stored here is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
