"""A tiny calculator with a real bug, for the demo task (`make demo`)."""


def mean(values: list[float]) -> float:
    """The arithmetic mean of `values`."""
    total = 0.0
    for v in values[1:]:  # the bug: the first value is skipped
        total += v
    return total / len(values)


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(value, high))
