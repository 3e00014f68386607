"""`python main.py -m MODEL -d DATASET --key=value ...`: config overrides from the command line (mde-mmrec).

Rules (applied by ``parse_overrides`` before any data is loaded):

* ``--key=value`` or ``--key value``; the value is read with MMRec's YAML loader (the one
  utils/configurator.py uses), so ``1e-3`` is a float, ``True`` a bool, ``null`` None, ``[0.1,0.01]`` a list.
* The key must exist in the merged config files (configs/overall.yaml, dataset/<d>.yaml, model/<m>.yaml);
  an unknown key is an error that lists the closest known keys.
* A list value makes the key a grid dimension (it is appended to hyper_parameters), unless the key already
  holds a list outside the grid (``topk``, ``metrics``, ``learning_rate_scheduler`` ...), where a list is
  simply its value. A single value for a grid key runs just that value (it becomes a one-element list).
* ``--hyper_parameters=[seed,reg_weight]`` replaces the grid keys. A key dropped from the grid that holds a
  one-element list takes that element; one that holds several values is an error (pin it: ``--key=value``).
* A value of another kind than the configured one (a string for a number, a number for a bool) is an error.
* results_file / resume / grid_shard, MMRec's training keys (epochs, ...) and, for a model that can check
  itself (MDE), every grid point's hyperparameters are checked here too (utils/results_log.py).
* ``-m`` / ``-d``: the model file, the data set's config and its interaction file must exist
  (``check_model_and_dataset``); MMRec itself would load data first and then fail with a Python error. The
  interaction and feature files must hold what MMRec can run on (``check_interactions``, data_checks.py).

``format_value`` writes a Python value so that it reads back identically; mde-mmrec uses it to build
command lines.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from pathlib import Path

import yaml

from . import data_checks, results_log


class OverrideError(ValueError):
    """A command-line override that cannot be applied; the message names the argument and the fix."""


# The float rule of utils/configurator.py (Config._build_yaml_loader): also reads 1e-3 and 1e+5 as floats.
# main.py passes MMRec's own loader; this copy serves format_value() and code that runs outside MMRec.
_FLOAT = re.compile(
    """^(?:
     [-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*
    |[-+]?\\.(?:inf|Inf|INF)
    |\\.(?:nan|NaN|NAN))$""",
    re.X,
)


class MMRecLoader(yaml.FullLoader):
    """yaml.FullLoader plus MMRec's float rule (a subclass: the global FullLoader is left alone)."""


MMRecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))

# keys that -m/-d set, or that MMRec computes itself
_RESERVED = {
    "model": "use -m MODEL",
    "dataset": "use -d DATASET",
    "device": "set use_gpu / gpu_id instead",
    "valid_metric_bigger": "it follows valid_metric",
}


def parse_value(text: str, loader=MMRecLoader):
    """One YAML scalar or flow list, as MMRec would read it from a config file."""
    if text.strip() == "":
        raise OverrideError("empty value")
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise OverrideError(f"not valid YAML ({' '.join(str(exc).split())})") from None


def format_value(value) -> str:
    """A command-line value that ``parse_value`` reads back as ``value`` (None -> null, True -> True,
    lists -> [a,b]); raises OverrideError for values that cannot round-trip."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value)
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = (
            ".nan"
            if math.isnan(value)
            else (".inf" if value == math.inf else "-.inf" if value == -math.inf else repr(value))
        )
    elif isinstance(value, str):
        text = value
        if not re.fullmatch(r"[A-Za-z0-9_./@:+\-]+", value) or _reads_as(value) != value:
            text = "'" + value.replace("'", "''") + "'"
    elif isinstance(value, (list, tuple)):
        text = "[" + ",".join(format_value(v) for v in value) + "]"
    else:
        raise OverrideError(f"cannot pass a {type(value).__name__} ({value!r}) on the command line")
    if not _same(_reads_as(text), list(value) if isinstance(value, tuple) else value):
        raise OverrideError(f"{value!r} does not survive the command line (it reads back as {_reads_as(text)!r})")
    return text


def _reads_as(text):
    try:
        return yaml.load(text, Loader=MMRecLoader)
    except yaml.YAMLError:
        return None


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def split_argv(argv):
    """['--a=1', '--b', '2'] -> [('--a=1', 'a', '1'), ('--b 2', 'b', '2')]."""
    pairs, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) < 3 or arg.startswith("--="):
            raise OverrideError(f"unexpected argument {arg!r}: overrides are written --key=value")
        if "=" in arg:
            key, text = arg[2:].split("=", 1)
            pairs.append((arg, key, text))
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            pairs.append((f"{arg} {argv[i + 1]}", arg[2:], argv[i + 1]))
            i += 2
        else:
            raise OverrideError(f"{arg!r} has no value: write {arg}=VALUE")
    return pairs


def _kind(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "a bool (True/False)"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "a mapping" if isinstance(value, dict) else type(value).__name__


def _check_kind(arg, key, default, value, grid_default, grid_value):
    """Each value given for ``key`` must be of the configured kind (int and float are both numbers); a key
    configured as None takes anything. ``grid_default`` / ``grid_value``: compare list elements."""
    defaults = default if grid_default and isinstance(default, list) else [default]
    given = value if grid_value and isinstance(value, list) else [value]
    expected = {_kind(d) for d in defaults} - {None}
    for v in given:
        if expected and _kind(v) is not None and _kind(v) not in expected:
            raise OverrideError(
                f"{arg}: {key} expects {' or '.join(sorted(expected))} (configured: {default!r}), got {_kind(v)} {v!r}"
            )


def _did_you_mean(name: str, known, cutoff: float = 0.5) -> str:
    same_letters = [k for k in known if k.lower() == name.lower()]
    close = same_letters or difflib.get_close_matches(name, sorted(known), n=4, cutoff=cutoff)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _unknown_key(arg, key, known) -> OverrideError:
    return OverrideError(
        f"{arg}: unknown config key {key!r} (not in configs/overall.yaml, the dataset or the "
        f"model yaml){_did_you_mean(key, known, cutoff=0.6)}"
    )


# the first line of a data set config that `mde-mmrec make-data` writes (mde_mmrec/synthetic.py)
SYNTHETIC_MARKER = "# Synthetic data set written by"
_AMAZON_SHAPES = ("baby", "sports", "clothing", "elec")  # make-data presets named after MMRec's data sets


def missing_data_fix(dataset: str, src=".") -> str:
    """What to do about data set ``dataset`` of the checkout whose ``src`` folder is given, when its files are
    missing: MMRec's own data sets (a config make-data did not write) are downloaded; a synthetic one is made
    (again)."""
    src = Path(src)
    root = src.resolve().parent
    yaml_path = src / "configs" / "dataset" / f"{dataset}.yaml"
    if yaml_path.is_file() and not yaml_path.read_text(encoding="utf-8").startswith(SYNTHETIC_MARKER):
        like = dataset if dataset in _AMAZON_SHAPES else "baby"
        return (
            f"'{dataset}' is one of MMRec's own data sets, downloaded separately: see MMRec's data/README.md "
            f"(a Google Drive folder with Baby, Sports, Elec), unpack it into {root / 'data' / dataset}; or use "
            f"synthetic data of its shape: `mde-mmrec make-data synthetic_{like} --mmrec {root}`, then "
            f"-d synthetic_{like}"
        )
    force = " --force" if yaml_path.is_file() else ""
    return f"create a synthetic data set with `mde-mmrec make-data {dataset} --mmrec {root}{force}`"


def check_model_and_dataset(model: str, dataset: str, src=".") -> None:
    """main.py's -m and -d, as MMRec finds them: the module ``models.<model lowercased>`` (a file or a package)
    holding class ``model``, and the data set's ``configs/dataset/<dataset>.yaml`` (paths relative to ``src``,
    the folder main.py runs in)."""
    src = Path(src)
    configs = src / "configs"
    if not (configs / "overall.yaml").is_file():
        raise OverrideError(
            f"{src.resolve()} has no configs/overall.yaml: run main.py from MMRec's src folder "
            "(cd MMRec/src; python main.py -m MODEL -d DATASET)"
        )
    models = {p.stem for p in (configs / "model").glob("*.yaml")}
    module = src / "models" / model.lower()
    exists = module.with_suffix(".py").is_file() or (module / "__init__.py").is_file()
    other_case = [k for k in models if k.lower() == model.lower() and k != model]  # -m mde for MDE
    if not exists or (model not in models and other_case):
        raise OverrideError(
            f"-m {model}: no such model (MMRec looks for class {model} in "
            f"src/models/{model.lower()}.py; names are case-sensitive){_did_you_mean(model, models)}"
        )
    datasets = {p.stem for p in (configs / "dataset").glob("*.yaml")}
    if dataset not in datasets:
        raise OverrideError(
            f"-d {dataset}: no data set config src/configs/dataset/{dataset}.yaml"
            f"{_did_you_mean(dataset, datasets)} (or {missing_data_fix(dataset, src)})"
        )


def check_interactions(dataset: str, values: dict, src=".", model: str | None = None) -> None:
    """The interaction file MMRec will read (``<data_path><dataset>/<inter_file_name>`` of the effective config)
    exists and holds what MMRec can train on, and the feature files ``model`` loads there are arrays with one row
    per item (utils/data_checks.py); what it would run on silently but wrongly is printed as warnings."""
    data_path, inter = values.get("data_path"), values.get("inter_file_name")
    if not (data_path and inter):
        return
    src = Path(src)
    folder = src / (str(data_path) + dataset)  # MMRec: os.path.abspath(data_path + dataset)
    path = folder / str(inter)
    if not path.is_file():
        raise OverrideError(
            f"-d {dataset}: its interactions {path.resolve()} do not exist (data_path "
            f"{data_path!r}, inter_file_name {inter!r}); {missing_data_fix(dataset, src)}"
        )
    try:
        n_items, warnings = data_checks.check_interaction_file(path.resolve(), values)
        if values.get("is_multimodal_model") and not values.get("end2end"):  # what MMRec's models load
            where = f"src/configs/dataset/{dataset}.yaml or the command line"
            files, feature_warnings = data_checks.feature_files(folder.resolve(), values, model, where)
            warnings += feature_warnings
            for key, feature_file in files.items():
                warnings += data_checks.check_feature_file(feature_file, f"{key} in {where}", n_items, path.resolve())
    except data_checks.DataError as exc:
        raise OverrideError(f"-d {dataset}: {exc}") from None
    for warning in warnings:
        print(f"main.py: warning: -d {dataset}: {warning}", file=sys.stderr)


def parse_overrides(
    argv, file_config: dict, loader=MMRecLoader, model: str | None = None, dataset: str | None = None, src="."
) -> dict:
    """The config_dict entries for ``argv`` (main.py's arguments after -m/-d).

    ``file_config``: the merged config files as Config reads them (``hyper_parameters`` concatenated over
    the files), before overrides: ``Config.read_files(model, dataset)`` in the patched configurator.
    ``model`` / ``dataset`` (main.py's -m / -d): checked with ``check_model_and_dataset`` in ``src``, and
    handed to the model's own grid check.
    """
    if model is not None:  # -m and -d first: with a mistyped model, every model key would look unknown
        check_model_and_dataset(model, dataset, src)
    pairs = split_argv(list(argv))
    known = set(file_config)
    values = {}
    for arg, key, text in pairs:
        if key in _RESERVED:
            raise OverrideError(f"{arg}: {key} cannot be overridden ({_RESERVED[key]})")
        if key not in known:
            raise _unknown_key(arg, key, known)
        if key in values:
            raise OverrideError(f"{arg}: {key} is given twice")
        try:
            values[key] = parse_value(text, loader)
        except OverrideError as exc:
            raise OverrideError(f"{arg}: {exc}") from None

    file_grid = list(file_config.get("hyper_parameters") or [])
    grid = list(file_grid)
    if "hyper_parameters" in values:
        grid = values.pop("hyper_parameters")
        if not isinstance(grid, list) or not all(isinstance(k, str) for k in grid):
            raise OverrideError(
                f"--hyper_parameters must be a list of config keys, like [seed,reg_weight]; got {grid!r}"
            )
        for key in grid:
            if key not in known:
                raise _unknown_key("--hyper_parameters", key, known)

    if "seed" not in grid:
        grid.insert(0, "seed")  # MMRec puts the seed first in every grid

    config_dict = {}
    for arg, key, _ in pairs:
        if key == "hyper_parameters":
            continue
        value, default = values[key], file_config.get(key)
        if isinstance(value, dict):
            raise OverrideError(f"{arg}: a mapping is not a config value here")
        list_setting = isinstance(default, list) and key not in file_grid  # topk, metrics, ...
        if isinstance(value, list) and not list_setting and key not in grid:
            grid.append(key)  # a list value makes the key a grid dimension
        _check_kind(arg, key, default, value, grid_default=key in file_grid or key in grid, grid_value=key in grid)
        if key in grid:
            value = value if isinstance(value, list) else [value]
            if not value:
                raise OverrideError(f"{arg}: an empty list leaves no grid point to run")
            repeated = [v for i, v in enumerate(value) if v in value[:i]]
            if repeated:
                raise OverrideError(
                    f"{arg}: {repeated[0]!r} is listed twice, so that grid point would run twice "
                    f"with the same seed; list each value once (repeated runs come from more seeds)"
                )
        config_dict[key] = value

    for key in grid:  # a grid key configured with one value: one grid value
        if key not in config_dict and not isinstance(file_config.get(key), list):
            config_dict[key] = [file_config.get(key)]

    # a key dropped from the grid must hold one value: MMRec would hand the model a list otherwise
    unpinned = []
    for key in dict.fromkeys(file_grid):
        value = config_dict.get(key, file_config.get(key))
        if key in grid or not isinstance(value, list):
            continue
        if len(value) == 1:
            config_dict[key] = value[0]
        else:
            unpinned.append(f"{key} holds {value!r}")
    if unpinned:
        keys = [entry.split()[0] for entry in unpinned]
        raise OverrideError(
            f"--hyper_parameters leaves {', '.join(keys)} out of the grid, but "
            f"{'; '.join(unpinned)}: pin one value each, e.g. " + " ".join(f"--{k}=VALUE" for k in keys)
        )
    if grid != file_grid:
        config_dict["hyper_parameters"] = grid

    merged = dict(file_config, **config_dict)
    if model is not None:
        check_interactions(dataset, merged, src, model)
        merged.update(model=model, dataset=dataset)
    try:
        results_log.check_settings(merged.get, present=merged.keys())  # an explicit --epochs=null is refused too
        results_log.check_resume(merged)  # after check_settings: results_file is a usable path by then
    except results_log.ResultsConfigError as exc:
        raise OverrideError(str(exc)) from None
    return config_dict
