"""The one exception type the command line turns into a readable error message."""


class MdeMmrecError(Exception):
    """A user-facing error: the message names the file, the field and the fix."""


def int_at_least(minimum: int):
    """An argparse type for whole numbers >= ``minimum``, with a readable error otherwise."""

    def parse(text: str) -> int:
        import argparse

        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)  # epochs, numbers of seeds
non_negative_int = int_at_least(0)  # seeds of numpy's generator


def non_negative_float(text: str) -> float:
    """An argparse type for limits (GB, minutes) where 0 means none."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or a positive number, got {text}")
    return value
