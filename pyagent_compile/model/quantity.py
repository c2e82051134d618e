"""Kubernetes resource quantities (`500m`, `16`, `128Gi`, `1.5e3`) and durations (`72h`)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_quantity(text: str | int | float) -> Decimal:
    """The value of a quantity in base units; ValueError if it is not one."""
    if isinstance(text, bool):
        raise ValueError("a quantity is a number or a string like 500m or 16Gi")
    if isinstance(text, (int, float)):
        return Decimal(str(text))
    match = _QUANTITY.match(text.strip()) if text.strip() == text else None
    if match is None:
        raise ValueError(f"{text!r} is not a quantity (examples: 500m, 2, 16Gi, 1.5T)")
    number, suffix = match.groups()
    try:
        value = Decimal(number)
    except InvalidOperation as exc:
        raise ValueError(f"{text!r} is not a quantity") from exc
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix:
        return value * _DECIMAL[suffix]
    return value


def format_quantity(text: str | int | float) -> str:
    """The form written into Kubernetes objects: strings as given, numbers without `.0`."""
    if isinstance(text, str):
        return text
    value = Decimal(str(text))
    return str(value.normalize()) if value != value.to_integral() else str(int(value))


def parse_duration(text: str) -> int:
    """`1d12h`, `72h`, `30m`, `45s` -> seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a duration (examples: 30s, 15m, 72h, 7d)")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
