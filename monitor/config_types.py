"""Value types that config fields are declared with, so one validator reads every table."""

from __future__ import annotations

import re
from typing import Annotated

DURATION = "duration"
SIZE = "size"

Duration = Annotated[float, DURATION]  # seconds; written "30s", "5m", "2h", "1d"
Size = Annotated[int, SIZE]  # bytes; written "10MB", "512KB", "100B"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Longer than any schedule, timeout or age a desk means, and far inside what a clock can add:
# `every = "99999999999999999999d"` would put the next fetch past the year 9999.
MAX_DURATION = 36500 * 86400.0
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.I)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3}  # fmt: skip


def parse_duration(value: object) -> float:
    """Seconds from "30s", "5m", "2h", "1d" (or "500ms"); ValueError otherwise.

    A number without its unit is refused, 0 aside: `every = 15` means minutes to some and
    seconds to others, and guessing wrong polls an outlet 60 times too often.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 2h or 1d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("must not be negative")
        number, unit, shown = float(value), None, str(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        number, unit, shown = float(m.group(1)), m.group(2), m.group(1)
    else:
        raise ValueError(f"expected a duration such as 30s, 5m, 2h or 1d, got {value!r}")
    if unit is None and number:
        raise ValueError(
            f"a duration needs its unit: write {shown}s, {shown}m, {shown}h or {shown}d"
        )
    seconds = number * _UNITS[unit or "s"]
    if seconds > MAX_DURATION:
        raise ValueError(f"must be at most 36500d (a hundred years), got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """`seconds` as a configuration writes it: 172800 → "2d", 90 → "90s"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_size(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a size such as 10MB")
    m = _SIZE.match(str(value)) if isinstance(value, int | str) else None
    if m is None:
        raise ValueError(f"expected a size such as 10MB or 512KB, got {value!r}")
    number, unit = float(m.group(1)), m.group(2)
    if unit is None and number:
        # As with durations: `max_body = "10"` meant 10MB to whoever wrote it, not 10 bytes.
        shown = m.group(1)
        raise ValueError(f"a size needs its unit: write {shown}B, {shown}KB or {shown}MB")
    return int(number * _SIZE_UNITS[(unit or "b").lower()])
