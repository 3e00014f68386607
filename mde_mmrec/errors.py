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


positive_int = _number(int, "a whole number", lambda value: value >= 1, "must be at least 1")  # epochs, seeds
non_negative_int = _number(int, "a whole number", lambda value: value >= 0, "must be at least 0")  # numpy seeds
# limits (GB, minutes) where 0 means none
non_negative_float = _number(
    float, "a number", lambda value: math.isfinite(value) and value >= 0, "must be 0 (no limit) or a positive number"
)
