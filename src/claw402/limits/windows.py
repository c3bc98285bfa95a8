"""Fixed windows aligned on the epoch and on UTC calendar days and months, so every replica
names the same window the same way without talking to the others."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta


def fixed(now: float, seconds: int) -> tuple[int, int]:
    """The window index of `now` and the whole seconds until it ends (at least 1)."""
    index = int(now // seconds)
    return index, max(1, math.ceil((index + 1) * seconds - now))


def day(now: datetime) -> tuple[str, datetime]:
    """`d20261207` and the next UTC midnight."""
    start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return start.strftime("d%Y%m%d"), start + timedelta(days=1)


def month(now: datetime) -> tuple[str, datetime]:
    """`m202612` and the first instant of the next UTC month."""
    nxt = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return now.strftime("m%Y%m"), nxt


def minute(now: datetime) -> str:
    return now.strftime("%Y%m%d%H%M")
