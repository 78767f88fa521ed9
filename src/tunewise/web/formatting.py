"""Jinja filters: times, durations and numbers as people read them."""

from __future__ import annotations

import json
import time
from typing import Any


def when(seconds: float | None) -> str:
    """Seconds since the epoch as `2026-05-12 14:03 UTC` (empty for None)."""
    if not seconds:
        return ""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(seconds)))


def iso(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(seconds))) if seconds else ""


def duration(seconds: float | None) -> str:
    """`45 s`, `12 min`, `3 h 20 min`."""
    if seconds is None:
        return ""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours:.0f} h {rest:.0f} min"


def until(seconds: float | None) -> str:
    """Time from now to `seconds` (`in 4 min`, `now`)."""
    if not seconds:
        return ""
    left = float(seconds) - time.time()
    return "now" if left <= 30 else f"in {duration(left)}"


def num(value: Any, digits: int = 4) -> str:
    """A number with `digits` significant digits; text and None pass through."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def install(env: Any) -> None:
    env.filters.update(when=when, iso=iso, duration=duration, until=until, num=num, pct=pct, pretty=pretty)
