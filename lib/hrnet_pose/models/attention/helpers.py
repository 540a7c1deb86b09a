"""Small shared helpers for the attention blocks (hidden-width rule, argument checks)."""


def reduced_channels(channels: int, reduction: float, min_channels: int) -> int:
    """Hidden width ``round(channels / reduction)`` with a floor of ``min(min_channels, channels)``.

    The floor matters for HRNet-W32's 32-channel branch, where ``32 / 16 = 2`` hidden units would be a bottleneck
    too narrow to learn a useful gate.
    """
    check_positive("reduction", reduction)
    check_positive("min_channels", min_channels)
    return max(min(min_channels, channels), int(round(channels / reduction)))


def check_positive(name: str, value: float) -> None:
    """ValueError naming the argument unless ``value`` is a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def check_int(name: str, value: int, minimum: int = 1) -> None:
    """ValueError naming the argument unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
