"""A model's settings as one declarative table (type, accepted values, meaning), read from MMRec's config.

Every check and every error message follows from the table, so a model file lists its settings once:
``read_settings`` at construction, ``check_grid`` for every point of a grid before any data is loaded.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np


class Setting(NamedTuple):
    """One key of MDE.yaml: its type, the values it accepts and what it means."""

    kind: type  # int, float, bool or str
    meaning: str
    least: float | None = None  # numbers: the smallest value accepted
    most: float | None = None  # numbers: the largest value accepted
    choices: tuple = ()  # strings: the values accepted
    nullable: bool = False  # null accepted


def _where_to_set(model: str, name: str) -> str:
    return f"set it in src/configs/model/{model}.yaml or on main.py's command line (--{name}=VALUE)"


def _expected(setting: Setting) -> str:
    """What a setting accepts, in words."""
    if setting.kind is bool:
        text = "True or False"
    elif setting.kind is str:
        text = "one of " + ", ".join(setting.choices)
    else:
        text = "an integer" if setting.kind is int else "a finite number"
        if setting.least is not None and setting.most is not None:
            text += f" in [{setting.least:g}, {setting.most:g}]"
        elif setting.least is not None:
            text += f" >= {setting.least:g}"
    return text + (" or null" if setting.nullable else "")


def read_setting(model: str, table: dict[str, Setting], name: str, value):
    """One config value checked against ``table[name]``; a ValueError names the fix."""
    setting = table[name]
    if isinstance(value, (list, tuple)):
        raise ValueError(
            f"{model}: '{name}' is a list {value!r}; list it in hyper_parameters to grid-search it, or "
            f"give one value: {_where_to_set(model, name)}"
        )
    if value is None and setting.nullable:
        return None
    is_bool = isinstance(value, (bool, np.bool_))
    parsed = None
    if setting.kind is bool:
        parsed = bool(value) if is_bool else None
    elif setting.kind is str:
        parsed = value if value in setting.choices else None
    elif not is_bool and isinstance(value, (int, float, np.number, str)):  # True would read as 1
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if setting.kind is int and number.is_integer():
            parsed = int(number)
        elif setting.kind is float and math.isfinite(number):
            parsed = number
        if parsed is not None and not (
            (setting.least is None or parsed >= setting.least) and (setting.most is None or parsed <= setting.most)
        ):
            parsed = None
    if parsed is None:
        raise ValueError(f"{model}: '{name}' must be {_expected(setting)}, got {value!r}; {_where_to_set(model, name)}")
    return parsed


def read_settings(model: str, table: dict[str, Setting], config) -> SimpleNamespace:
    """Every setting of ``table`` from MMRec's config, checked (attributes named as the table's keys)."""
    missing = [name for name in table if name not in config]
    if missing:
        raise ValueError(
            f"{model}: {', '.join(missing)} missing from the configuration; add them to "
            f"src/configs/model/{model}.yaml (the {model}.yaml that comes with the model lists every key)"
        )
    return SimpleNamespace(**{name: read_setting(model, table, name, config[name]) for name in table})


def check_grid(model: str, table: dict[str, Setting], get) -> None:
    """Check the settings of every grid point before any data is loaded; ``get(key)`` reads the config. Keys
    missing from the config are left to the model's own check at construction."""
    try:
        base = {name: get(name) for name in table}
    except KeyError:  # a plain dict's __getitem__ (MMRec's Config returns None for a missing key)
        return
    if any(value is None and not table[name].nullable for name, value in base.items()):
        return
    keys = [k for k in (get("hyper_parameters") or []) if k in base and isinstance(base[k], list)]
    failures = []
    for combo in itertools.product(*(base[k] for k in keys)):
        point = dict(zip(keys, combo))
        try:
            read_settings(model, table, {**base, **point})
        except ValueError as exc:
            failures.append((point, str(exc)))
    if failures:  # name the grid point only when the error depends on it (some other point is valid)
        point, message = failures[0]
        some_valid = len(failures) < math.prod(len(base[k]) for k in keys)
        raise ValueError(f"{message} [grid point {point}]" if some_valid else message)
