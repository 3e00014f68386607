"""The one exception type the command line turns into a readable error message, and argparse's number types."""

import argparse
import math


class MdeMmrecError(Exception):
    """A user-facing error: the message names the file, the field and the fix."""


def _number(convert, kind: str, ok, requirement: str):
    """An argparse type: ``convert(text)``, with a readable error unless it is a ``kind`` that is ``ok``."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{requirement}, got {text}")
        return value

    return parse


def int_at_least(minimum: int):
    """An argparse type for whole numbers >= ``minimum``."""
    return _number(int, "a whole number", lambda value: value >= minimum, f"must be at least {minimum}")


positive_int = int_at_least(1)  # epochs, numbers of seeds
non_negative_int = int_at_least(0)  # seeds of numpy's generator
# limits (GB, minutes) where 0 means none
non_negative_float = _number(
    float, "a number", lambda value: math.isfinite(value) and value >= 0, "must be 0 (no limit) or a positive number"
)
