"""Machine-readable grid results for MMRec (added by mde-mmrec; called from the patched quick_start.py).

Three config keys control it (patched into configs/overall.yaml, defaults shown):

    results_file: null   # path (absolute, or relative to src/): every finished grid point appends one JSON line
    resume: False        # True: skip grid points already in results_file (same model, dataset and params;
                         # a finished point made with other settings is an error)
    grid_shard: null     # "i/n" (1-based i): run only grid points p (0-based, product order) with p % n == i-1

One line per finished grid point (appended, flushed and fsync'd, so a killed run leaves earlier lines
intact; a line cut off by a kill is skipped by ``read_results`` with a warning, and removed by the next
``append_record``):

    {"model", "dataset", "params": {grid key: value}, "settings": {every other config key: value}, "seed",
     "best_epoch" (MMRec's epoch index, from 0), "epochs_run",
     "best_valid": {"recall@20": ...}, "test": {... at the best valid epoch},
     "train_time_s": wall time of trainer.fit (training and evaluation),
     "s_per_epoch": mean training time per epoch (without evaluation),
     "eval_s": mean time of one evaluation pass (valid + test),
     "model_init_s": time to construct the model (graph building), "peak_rss_mb": the process's peak so far,
     "peak_gpu_mb": the most GPU memory PyTorch had allocated so far (null on the CPU),
     "mmrec_commit", "plugin_version", "finished_at",
     "failed": null, or why the point has no result (no epoch finished: the loss was NaN or inf)}

This module imports nothing from MMRec, so the mde-mmrec tools (and its tests) can use it directly.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

# written by `mde-mmrec install` next to this file: {"mmrec_commit": ..., "plugin_version": ...}
PLUGIN_INFO_FILE = Path(__file__).with_name("mde_plugin_info.json")

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ResultsConfigError(ValueError):
    """A results_file / resume / grid_shard setting that cannot work; the message names the key and the fix."""


def parse_shard(value):
    """``"i/n"`` -> ``(i, n)`` with 1 <= i <= n; None -> None."""
    if value is None:
        return None
    match = _SHARD.match(str(value))
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ResultsConfigError(
            f"grid_shard={value!r} is not of the form i/n with 1 <= i <= n (for example --grid_shard=1/4)"
        )
    return int(match.group(1)), int(match.group(2))


# MMRec's training keys that take a positive whole number; a value it would accept silently (epochs=-1 runs no
# epoch and reports NaN, as if the loss had diverged) is refused before any data is loaded
_POSITIVE_INTEGERS = {
    "epochs": 1000,
    "train_batch_size": 2048,
    "eval_batch_size": 4096,
    "eval_step": 1,
}  # example values


def check_training_keys(get, present=None):
    """``epochs`` and the other keys in ``_POSITIVE_INTEGERS`` (every grid value of a grid key) and
    ``learning_rate`` hold values MMRec can train with. ``get`` returns None (MMRec's Config) or raises
    KeyError for a key that is not set; where the caller knows which keys are set (``present``, main.py's merged
    config), a None among them is a value (``--epochs=null``) and refused."""
    for key in (*_POSITIVE_INTEGERS, "learning_rate"):
        try:
            value = get(key)
        except KeyError:
            continue
        for v in value if isinstance(value, list) else [value]:
            if v is None and (present is None or key not in present):
                continue
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if key == "learning_rate":
                if not number or not 0 < v < float("inf"):
                    raise ResultsConfigError(
                        f"learning_rate={v!r} must be a positive number (for example --learning_rate=0.001)"
                    )
            elif not number or not isinstance(v, int) or v < 1:  # MMRec uses them as ints: 2.0 fails later
                raise ResultsConfigError(
                    f"{key}={v!r} must be a whole number >= 1 (for example --{key}={_POSITIVE_INTEGERS[key]})"
                )


def check_settings(get, present=None):
    """Validate the three keys, MMRec's training keys and the model's grid if its module can (see
    ``check_model_grid``), before any data is loaded; ``get(key)`` returns a setting or None (``present``: see
    ``check_training_keys``)."""
    check_training_keys(get, present)
    check_model_grid(get)
    parse_shard(get("grid_shard"))
    results_file, resume = get("results_file"), get("resume")
    if resume not in (None, True, False):
        raise ResultsConfigError(f"resume={resume!r} must be True or False")
    if results_file is not None and not isinstance(results_file, str):
        raise ResultsConfigError(f"results_file={results_file!r} must be a path (a string) or null")
    if resume and not results_file:
        raise ResultsConfigError(
            "resume=True needs a results_file to read the finished grid points from (set --results_file=PATH)"
        )
    if results_file:
        if Path(results_file).is_dir():
            raise ResultsConfigError(
                f"results_file={results_file!r} is a folder; give a file in it, e.g. "
                f"{Path(results_file) / 'results.jsonl'}"
            )
        folder = Path(results_file).resolve().parent
        if not folder.is_dir():
            raise ResultsConfigError(
                f"results_file={results_file!r}: folder {folder} does not exist; create it or choose another path"
            )


def check_model_grid(get):
    """A model module may define ``check_grid(get)`` to check every grid point's hyperparameters before any data
    is loaded (MDE does), so that a bad value at the last point of a long grid fails at once, not hours in."""
    import importlib

    try:
        module = importlib.import_module(f"models.{str(get('model')).lower()}")
    except Exception:  # not importable here (tests, tools; a missing package): MMRec's own import of the
        return  # model raises it again, and the model checks itself when constructed
    hook = getattr(module, "check_grid", None)
    if hook is not None:
        try:
            hook(get)
        except ValueError as exc:  # the model's own message, shown as a config error (no traceback)
            raise ResultsConfigError(str(exc)) from None


def _plain(value):
    """JSON-safe copy of a config value (numpy scalars and tuples become Python numbers and lists)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def params_of(hyper_keys, hyper_tuple) -> dict:
    """The grid point as a dict, in grid order."""
    return _plain(dict(zip(hyper_keys, hyper_tuple)))


def _parse_lines(data: bytes):
    """(records, number of lines that are not a complete JSON object: cut off by a run killed while writing)
    of a results file's bytes."""
    records, torn = [], 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            torn += 1
    return records, torn


def point_key(record: dict):
    """What identifies a grid point in a results file (None for a line that names no point)."""
    if "params" not in record:
        return None
    return record.get("model"), record.get("dataset"), json.dumps(record["params"], sort_keys=True)


def unique_points(records: list) -> tuple:
    """(records with each grid point once, the first line of each; how many lines repeated a point)."""
    seen, unique = set(), []
    for record in records:
        key = point_key(record)
        if key is None or key not in seen:
            seen.add(key)
            unique.append(record)
    return unique, len(records) - len(unique)


def read_results(path, warn=True) -> list:
    """Every complete JSON line of a results file ([] when it does not exist), each grid point once. A line cut
    off by a kill, and a second line for a point already there (two runs that trained it at once), are left out
    with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    records, torn = _parse_lines(path.read_bytes())
    records, repeated = unique_points(records)
    if warn and torn:
        logging.getLogger().warning(
            f"{path}: skipping {torn} incomplete results line(s) (a run killed while "
            "writing; the point runs again, and the next write removes the line)"
        )
    if warn and repeated:
        logging.getLogger().warning(
            f"{path}: {repeated} line(s) repeat a grid point already there; each point is counted once (its first line)"
        )
    return records


def write_records(path, records: list) -> None:
    """Replace a JSON-lines file with ``records``, atomically: a reader sees the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write("".join(json.dumps(_plain(r)) + "\n" for r in records).encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


# config keys that say where results go, how a run is scheduled and logged, or that MMRec derives from others:
# not part of a grid point's settings
_NOT_SETTINGS = (
    "seed",
    "hyper_parameters",
    "results_file",
    "resume",
    "grid_shard",
    "progress_every_s",
    "device",
    "gpu_id",
    "valid_metric_bigger",
    "checkpoint_dir",
    "eval_batch_size",
    "graph_cache",
    "save_recommended_topk",
    "recommend_topk",
)


def point_settings(values: dict) -> dict:
    """What decides a grid point's numbers besides its ``params``: the effective config (config files and
    overrides; MMRec's ``Config.final_config_dict``, or main.py's merged dict), less the grid keys and
    ``_NOT_SETTINGS``; JSON-safe. Each results line records it as ``settings``."""
    grid = set(values.get("hyper_parameters") or [])
    return _plain({k: v for k, v in sorted(values.items()) if k not in grid and k not in _NOT_SETTINGS})


def settings_difference(old: dict, new: dict) -> str:
    """The keys two settings dicts differ in, as ``key: old -> new; ...``."""
    missing = "(not set)"
    return "; ".join(
        f"{k}: {old.get(k, missing)} -> {new.get(k, missing)}"
        for k in sorted(set(old) | set(new))
        if old.get(k, missing) != new.get(k, missing)
    )


def check_resume(values: dict, records: list | None = None) -> None:
    """With resume on, the finished points of this model and data set in results_file (``records``, read from it
    unless given) must have been made with the current settings: otherwise a point would be skipped on the
    strength of a result computed with, say, another cl_temperature. A line without recorded settings (written
    before they were recorded) cannot show that, and is refused too."""
    if not values.get("resume") or not values.get("results_file"):
        return
    current = point_settings(values)
    for r in read_results(values["results_file"], warn=False) if records is None else records:
        if (r.get("model"), r.get("dataset")) != (values.get("model"), values.get("dataset")):
            continue
        if "settings" not in r:
            raise ResultsConfigError(
                f"resume=True: {values['results_file']} holds grid point {r.get('params')} of {r.get('model')} on "
                f"{r.get('dataset')} without recorded settings (written by an older mde-mmrec), so it cannot show "
                "that it was made with the current ones: choose another results_file, or resume=False to run "
                "every point again"
            )
        if r["settings"] != current:
            raise ResultsConfigError(
                f"resume=True: {values['results_file']} holds grid point {r.get('params')} of {r.get('model')} on "
                f"{r.get('dataset')} made with other settings ({settings_difference(r['settings'], current)}); "
                "resume reuses only points made with the same settings: choose another results_file, or "
                "resume=False to run every point again"
            )


def append_record(path, record: dict) -> None:
    """Append one JSON line and force it to disk. A file holding a line cut off by a kill is first rewritten
    without it (atomically), so every later reader sees complete lines only."""
    path = Path(path)
    line = (json.dumps(_plain(record)) + "\n").encode("utf-8")
    data = path.read_bytes() if path.exists() else b""
    records, torn = _parse_lines(data)
    if torn:
        write_records(path, records + [record])
        logging.getLogger().warning(f"{path}: removed {torn} incomplete line(s) left by a killed run")
        return
    with open(path, "ab") as handle:
        handle.write(line if data.endswith(b"\n") or not data else b"\n" + line)
        handle.flush()
        os.fsync(handle.fileno())


EVENTS_VARIABLE = "MDE_MMREC_EVENTS"  # set by mde-mmrec for each main.py it runs: where progress events go


def event(kind: str, **fields) -> None:
    """Append one progress event (a JSON line: ``event``, ``time`` and ``fields``) to the file that
    $MDE_MMREC_EVENTS names (patch 0023); nothing without it. mde-mmrec shows progress from these lines."""
    path = os.environ.get(EVENTS_VARIABLE)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(_plain({"event": kind, "time": round(time.time(), 3), **fields})) + "\n")


def points_to_run(config, combinators):
    """The grid points this run trains, as (0-based index in the full product, tuple): those of this
    grid_shard, less those already in results_file when resume is on (each skip is logged)."""
    logger = logging.getLogger()
    check_settings(config.__getitem__)
    records = read_results(config["results_file"]) if config["results_file"] else []
    check_resume(getattr(config, "final_config_dict", config), records)
    shard = parse_shard(config["grid_shard"])
    keys = config["hyper_parameters"]
    done = [
        r.get("params") for r in records if r.get("model") == config["model"] and r.get("dataset") == config["dataset"]
    ]
    selected, again = [], 0
    for index, hyper_tuple in enumerate(combinators):
        if shard and index % shard[1] != shard[0] - 1:
            continue
        params = params_of(keys, hyper_tuple)
        if params in done and config["resume"]:
            logger.info(
                f"skipping grid point {index + 1}/{len(combinators)} {params}: already in {config['results_file']}"
            )
            event("skipped", index=index + 1, of=len(combinators), params=params)
            continue
        again += params in done
        selected.append((index, hyper_tuple))
    if again:
        logger.warning(
            f"{again} grid point(s) to run are already in {config['results_file']}: each will have a "
            f"second line there (pass --resume=True to skip finished points)"
        )
    if shard:
        logger.info(f"grid_shard {shard[0]}/{shard[1]}: {len(selected)} of {len(combinators)} grid points to run")
    return selected


def plugin_info() -> dict:
    """{"mmrec_commit", "plugin_version"} as recorded by the installer; the commit falls back to git."""
    info = {"mmrec_commit": None, "plugin_version": None}
    try:
        info.update(json.loads(PLUGIN_INFO_FILE.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass
    if not info.get("mmrec_commit"):
        try:
            info["mmrec_commit"] = (
                subprocess.run(
                    ["git", "rev-parse", "HEAD"],
                    cwd=Path(__file__).resolve().parent,
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=True,
                ).stdout.strip()
                or None
            )
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def peak_rss_mb():
    """Peak resident memory of this process so far (MB), or None where the platform cannot tell."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS, KiB on Linux


def peak_gpu_mb(device):
    """The most memory PyTorch's allocator has held on ``device`` in this process (MB), or None where the run
    is not on a CUDA device."""
    if "torch" not in sys.modules:  # the run imported no torch: nothing on a GPU
        return None
    import torch

    if device is None or torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def _mean(values):
    return round(sum(values) / len(values), 4) if values else None


def build_record(config, hyper_tuple, trainer, best_valid, best_test, model_init_s, train_time_s) -> dict:
    """The results line of one finished grid point. ``trainer`` is the patched common.trainer.Trainer, which
    records best_epoch, epoch_times and eval_times."""
    info = plugin_info()
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "params": params_of(config["hyper_parameters"], hyper_tuple),
        "settings": point_settings(getattr(config, "final_config_dict", config)),
        "seed": config["seed"],
        "best_epoch": trainer.best_epoch,
        "epochs_run": len(trainer.epoch_times),
        "best_valid": dict(best_valid),
        "test": dict(best_test),
        "train_time_s": round(train_time_s, 3),
        "s_per_epoch": _mean(trainer.epoch_times),
        "eval_s": _mean(trainer.eval_times),
        "model_init_s": round(model_init_s, 3),
        "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": peak_gpu_mb(config["device"]),
        "mmrec_commit": info.get("mmrec_commit"),
        "plugin_version": info.get("plugin_version"),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # MMRec's trainer stops at a NaN / inf loss; with no epoch evaluated its metrics are only zeros
        "failed": None if trainer.best_epoch is not None else NO_EPOCH_FINISHED,
    }


NO_EPOCH_FINISHED = "no epoch finished: the loss was NaN or inf in the first epoch (see the log)"


def record_point(config, hyper_tuple, trainer, best_valid, best_test, model_init_s, train_time_s):
    """Append the grid point's line to results_file (if one is set) and return the record."""
    record = build_record(config, hyper_tuple, trainer, best_valid, best_test, model_init_s, train_time_s)
    event("finished", params=record["params"], failed=record["failed"])
    if record["failed"]:
        logging.getLogger().error(f"grid point {record['params']}: {record['failed']}")
    if config["results_file"]:
        append_record(config["results_file"], record)
        logging.getLogger().info(f"results appended to {config['results_file']}")
    return record
