"""What the commands that run MMRec share: the effective config, the checks made before any training, one
``main.py`` run with its progress, the results files and their settings sidecar (resume).

``run_configs`` runs each configuration as ONE MMRec process whose grid is the list of seeds, the other grid
keys pinned to one value each (docs/workflow.md); ``grid`` runs a whole grid in one process through ``run_one``.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import functools
import hashlib
import importlib.util
import json
import logging
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import mmrec, synthetic
from .errors import MdeMmrecError, non_negative_int, positive_int
from .runner import MEMORY_LIMIT_EXIT, TIME_LIMIT_EXIT, events_file, out_dir_lock, run_main

log = logging.getLogger(__name__)

DEFAULT_SEED = 999  # MMRec's configs/overall.yaml seed
MULTIMODAL_NEEDS_USER_GRAPH = ("DRAGON", "DualGNN")


@dataclass
class RunConfig:
    """One configuration to run over seeds: a model and the config overrides that make it."""

    label: str  # its name in tables and file names ("MDE w/o MDA")
    model: str
    overrides: dict = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label).strip("_")


# ----------------------------------------------------------------------------------- reading configs
def merged_config(checkout: Path, model: str, dataset: str) -> dict:
    """overall.yaml, the data set's and the model's yaml merged as MMRec's Config reads them."""
    configs = Path(checkout) / "src" / "configs"
    merged, grid = {}, []
    for path in (
        configs / "overall.yaml",
        configs / "dataset" / f"{dataset}.yaml",
        configs / "model" / f"{model}.yaml",
    ):
        data = mmrec.load_yaml(path)
        grid += list(data.get("hyper_parameters") or [])
        merged.update(data)
    merged["hyper_parameters"] = grid
    return merged


def available(checkout: Path, kind: str) -> list[str]:
    return sorted(p.stem for p in (Path(checkout) / "src" / "configs" / kind).glob("*.yaml"))


# MMRec models that cannot run on every machine (unpatched: their code is MMRec's): .cuda() called
# unconditionally, or a package that is not installed here (found by reading the model file's imports)
NEEDS_CUDA = ("DAMRS", "GRCN", "LATTICE", "MGCN", "SMORE")
PIP_NAME = {"sklearn": "scikit-learn"}  # import name -> pip name, where they differ
BROKEN = {
    "LayerGCN": "MMRec's layergcn.py imports models.common, which MMRec does not have (its common/ is src/common)"
}


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def missing_imports(checkout: Path, model: str) -> list[str]:
    """Top-level packages that MMRec's ``src/models/<model>.py`` imports at module level and Python cannot find."""
    src = Path(checkout) / "src"
    path = src / "models" / f"{model.lower()}.py"
    try:
        body = ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body
    except (OSError, SyntaxError):  # no such file (check_model_exists names it); MMRec's run reports the line
        return []
    names = []
    for node in body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return [
        name
        for name in dict.fromkeys(n.split(".")[0] for n in names)
        if not ((src / name).is_dir() or (src / f"{name}.py").is_file()) and importlib.util.find_spec(name) is None
    ]


def why_not_runnable(model: str, cuda: bool | None = None, checkout: Path | None = None) -> str | None:
    """Why MMRec's ``model`` cannot run here (None if it can); with ``checkout``, also its missing imports."""
    if model in BROKEN:
        return BROKEN[model]
    missing = missing_imports(checkout, model) if checkout is not None else []
    if missing:
        names, pip = ", ".join(missing), " ".join(PIP_NAME.get(m, m) for m in missing)
        return (
            f"MMRec's {model.lower()}.py imports {names}, which {'is' if len(missing) == 1 else 'are'} not "
            f"installed (pip install {pip})"
        )
    if model in NEEDS_CUDA and not (cuda_available() if cuda is None else cuda):
        return f"MMRec's {model.lower()}.py calls .cuda() unconditionally, and this machine has no CUDA GPU"
    return None


def runnable(
    configs: list[RunConfig], cuda: bool | None = None, checkout: Path | None = None
) -> tuple[list[RunConfig], dict[str, str]]:
    """(configurations to run, {label: "not run: reason"} for those that cannot run here)."""
    reasons = {c.label: why_not_runnable(c.model, cuda, checkout) for c in configs}
    skipped = {label: f"not run: {why}" for label, why in reasons.items() if why}
    return [c for c in configs if c.label not in skipped], skipped


def check_model(checkout: Path, model: str) -> None:
    """``model`` exists in the checkout and can run on this machine."""
    check_model_exists(checkout, model)
    reason = why_not_runnable(model, checkout=checkout)
    if reason:
        raise MdeMmrecError(f"model {model!r} cannot run here: {reason}; choose another model")


def check_model_exists(checkout: Path, model: str) -> None:
    """``model`` has its config and model file in the checkout (names are case-sensitive)."""
    if not (Path(checkout) / "src" / "configs" / "model" / f"{model}.yaml").is_file():
        models = available(checkout, "model")
        close = [m for m in models if m.lower() == model.lower()] or difflib.get_close_matches(model, models, n=3)
        raise MdeMmrecError(
            f"unknown model {model!r}: no src/configs/model/{model}.yaml in {checkout} "
            f"(models there: {', '.join(models)}; names are case-sensitive)"
            + (f"; did you mean {', '.join(close)}?" if close else "")
        )
    if not (Path(checkout) / "src" / "models" / f"{model.lower()}.py").is_file():
        raise MdeMmrecError(f"model {model!r}: src/models/{model.lower()}.py is missing in {checkout}")


def interaction_file(checkout: Path, dataset: str, cfg: dict) -> Path:
    """Where MMRec reads the data set's interactions, per ``cfg`` (a merged config)."""
    data_dir = (Path(checkout) / "src" / cfg.get("data_path", "../data/") / dataset).resolve()
    return data_dir / str(cfg.get("inter_file_name") or f"{dataset}.inter")


def check_dataset(checkout: Path, dataset: str, model: str | None = None, overrides: dict | None = None) -> list[str]:
    """The data set's files hold what MMRec can run on (src/utils/data_checks.py); returns the warnings."""
    yaml_path = Path(checkout) / "src" / "configs" / "dataset" / f"{dataset}.yaml"
    if not yaml_path.is_file():
        raise MdeMmrecError(
            f"unknown data set {dataset!r}: no {yaml_path} (data sets there: "
            f"{', '.join(available(checkout, 'dataset'))}); "
            f"{synthetic.missing_data_hint(checkout, dataset)}"
        )
    cfg = dict(merged_config(checkout, model or "", dataset), **(overrides or {}))
    inter = interaction_file(checkout, dataset, cfg=cfg)
    if not inter.is_file():
        raise MdeMmrecError(
            f"data set {dataset!r}: interaction file {inter} is missing (inter_file_name in "
            f"{yaml_path}); {synthetic.missing_data_hint(checkout, dataset)}"
        )
    checks = mmrec.plugin_module("data_checks")  # what main.py checks too (utils/cli_overrides.py)
    try:
        n_items, warnings = checks.check_interaction_file(inter, cfg)
        if model is None or cfg.get("is_multimodal_model"):
            files, feature_warnings = checks.feature_files(inter.parent, cfg, model, str(yaml_path))
            warnings += feature_warnings
            for key, path in files.items():
                warnings += checks.check_feature_file(path, f"{key} in {yaml_path}", n_items, inter)
    except checks.DataError as exc:
        raise MdeMmrecError(f"data set {dataset!r}: {exc}") from None
    for warning in warnings:
        _warn_once(dataset, warning)
    return warnings


@functools.cache
def _warn_once(dataset: str, warning: str) -> None:
    """A data set's warning, logged once, not once per model of a comparison."""
    log.warning("data set %r: %s", dataset, warning)


def parse_sets(items: list[str] | None) -> dict[str | None, dict]:
    """``["MDE:cl_weight=0.1", "epochs=3"]`` -> ``{"MDE": {"cl_weight": 0.1}, None: {"epochs": 3}}``."""
    out: dict[str | None, dict] = {}
    parse_value = mmrec.plugin_module("cli_overrides").parse_value
    for item in items or []:
        head, sep, text = item.partition("=")
        if not sep or not head:
            raise MdeMmrecError(f"--set {item!r}: write --set MODEL:key=value or --set key=value")
        model, _, key = head.rpartition(":")
        try:
            value = parse_value(text)
        except Exception as exc:  # OverrideError: a malformed value
            raise MdeMmrecError(f"--set {item!r}: {exc}") from None
        scope = out.setdefault(model or None, {})
        if key in scope:
            raise MdeMmrecError(f"--set {item!r}: {head} is set twice; give each key once")
        scope[key] = value
    return out


def check_set_models(sets: dict, models, where: str) -> None:
    """Every ``MODEL:`` prefix of ``parse_sets``'s result names a model that ``where`` runs."""
    unknown = [m for m in sets if m is not None and m not in models]
    if unknown:
        raise MdeMmrecError(
            f"--set names model(s) {', '.join(unknown)} that {where} does not run (it runs "
            f"{', '.join(sorted(set(models)))})"
        )


def check_single_values(file_config: dict, sets: dict, label: str) -> None:
    """One configuration is one setting: a list value would make its key a grid dimension in MMRec."""
    file_grid = file_config.get("hyper_parameters") or []
    lists = [
        f"{k}={v}"
        for k, v in sets.items()
        if isinstance(v, list)
        and k != "hyper_parameters"
        and (k in file_grid or not isinstance(file_config.get(k), list))
    ]
    if lists:
        raise MdeMmrecError(
            f"configuration {label!r}: {', '.join(lists)} would be a grid inside one row; give "
            f"one value per configuration (--set {label}:key=value), or search over values "
            "with `mde-mmrec grid`"
        )


def pin_grid(file_config: dict, sets: dict) -> tuple[dict, list[str]]:
    """(overrides incl. ``sets``, warnings) that leave only the seed in the grid: every other list-valued grid
    key takes its value from ``sets``, else its first value."""
    overrides, warnings = dict(sets), []
    for key in file_config.get("hyper_parameters") or []:
        value = file_config.get(key)
        if key == "seed" or key in sets or not isinstance(value, list):
            continue
        overrides[key] = value[0] if value else None
        if len(value) > 1:
            model = file_config.get("model", "MODEL")
            warnings.append(f"{key}={value[0]!r} (first of {value}; choose with --set {model}:{key}=VALUE)")
    return overrides, warnings


def unknown_keys_error(
    where: str, unknown: list[str], known, why: str = "not in configs/overall.yaml, the data set's or the model's yaml"
) -> MdeMmrecError:
    hints = [
        (k, ", ".join(close))
        for k in unknown
        if (close := difflib.get_close_matches(k, sorted(known), n=3, cutoff=0.6))
    ]
    if len(unknown) == 1 and hints:
        hint = f"; did you mean {hints[0][1]}?"
    else:
        hint = "".join(f"; for {k}, did you mean {close}?" for k, close in hints)
    return MdeMmrecError(f"{where}: unknown config key(s) {', '.join(unknown)} ({why}){hint}")


def check_keys(file_config: dict, overrides: dict, where: str) -> None:
    unknown = [k for k in overrides if k not in file_config]
    if unknown:
        raise unknown_keys_error(where, unknown, file_config)


# ------------------------------------------------------------------------------------------ settings
# Finished runs are reused only with the same settings: each results file has a sidecar
# (<name>.settings.json) with them, and a rerun with other settings is refused, not mixed in.
def results_log():
    """The plugin's src/utils/results_log.py: the one reader and writer of results files."""
    return mmrec.plugin_module("results_log")


def run_settings(checkout, model: str, dataset: str, overrides: dict) -> dict:
    """What decides a run's numbers besides its seed and grid point (the sidecar's content): each results line's
    ``settings`` (results_log.point_settings) with the grid's keys, the data and the plugin."""
    info = mmrec.installed_info(checkout)  # {} in a checkout without the installer's manifest (tests' stand-ins)
    config = {**merged_config(checkout, model, dataset), **overrides}
    inter = interaction_file(checkout, dataset, config)
    digest = _sha256(inter, inter.stat().st_mtime_ns, inter.stat().st_size) if inter.is_file() else None
    settings = {
        "model": model,
        "dataset": dataset,
        "interactions_sha256": digest,
        "config": {**results_log().point_settings(config), "hyper_parameters": config["hyper_parameters"]},
        "plugin": info.get("fingerprint"),
        "mmrec_commit": info.get("mmrec_commit"),
    }
    return json.loads(json.dumps(settings))  # as the sidecar holds it


@functools.lru_cache(maxsize=8)
def _sha256(path: Path, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def settings_file(results_file) -> Path:
    return Path(results_file).with_suffix(".settings.json")


class OtherSettingsError(MdeMmrecError):
    """A results file holds finished runs made with other (or unrecorded) settings."""


def check_settings(results_file, settings: dict) -> None:
    """Refuse to resume a results file whose finished runs were made with other (or unrecorded) settings."""
    records = results_log().read_results(results_file)
    if not records:
        return
    sidecar = settings_file(results_file)
    fix = (
        f"finished runs are reused only with identical settings: choose another --out, or delete "
        f"{results_file} and {sidecar} to run them again"
    )
    if any("settings" not in r for r in records):
        raise OtherSettingsError(
            f"{results_file} holds runs without recorded settings (written by an older "
            f"mde-mmrec), which cannot show that they were made with the current ones; {fix}"
        )
    if not sidecar.is_file():  # written by main.py itself, or the sidecar was deleted
        log.warning(
            "%s holds finished runs but no %s: main.py compares each finished run's own recorded "
            "settings with the current ones, reusing only runs made with the same settings",
            results_file,
            sidecar.name,
        )
        return
    recorded = json.loads(sidecar.read_text(encoding="utf-8"))
    if recorded != settings:
        raise OtherSettingsError(
            f"{results_file} holds runs made with other settings ({settings_difference(recorded, settings)}); {fix}"
        )


def finished_with_recorded_settings(results_file) -> list[dict]:
    """The records mde-mmrec may skip itself: all when the sidecar vouches for them, else none (main.py checks)."""
    return results_log().read_results(results_file) if settings_file(results_file).is_file() else []


def record_settings(results_file, settings: dict, verified: bool = False) -> None:
    """Write the results file's sidecar; over finished runs without one, only once main.py ``verified`` them."""
    if verified or settings_file(results_file).is_file() or not results_log().read_results(results_file):
        settings_file(results_file).write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")


def settings_difference(old: dict, new: dict) -> str:
    """The keys two sidecars differ in, as ``key: old -> new; ...`` (a grid key shows as ``(a grid key)``)."""

    def flat(sidecar: dict) -> dict:
        config = sidecar.get("config", {})
        grid = {k: "(a grid key)" for k in config.get("hyper_parameters") or [] if k not in config}
        return {**{k: v for k, v in sidecar.items() if k != "config"}, **grid, **config}

    return results_log().settings_difference(flat(old), flat(new))


# ------------------------------------------------------------------------------------------- running
def ensure_user_graph(checkout: Path, dataset: str) -> None:
    """DRAGON and DualGNN read data/D/user_graph_dict.npy: build it (fast, sparse) when missing."""
    cfg = merged_config(checkout, "DRAGON", dataset)
    path = interaction_file(checkout, dataset, cfg=cfg).parent / str(cfg.get("user_graph_dict_file"))
    if not path.is_file():  # (a config without user_graph_dict_file: write_user_graph says what to add)
        from . import usergraph

        log.info("building the user graph %s (needed by DRAGON / DualGNN)", path)
        usergraph.write_user_graph(checkout, dataset)


def prepare(
    checkout,
    dataset: str,
    configs: list[RunConfig],
    seeds: list[int],
    out_dir: Path,
    epochs: int | None = None,
    common: dict | None = None,
) -> list[tuple[RunConfig, dict, list[str], dict]]:
    """Check everything before any training; per configuration: (it, overrides, pinned-key warnings, settings)."""
    if not seeds:
        raise MdeMmrecError("no seeds to run (use --seeds N with N >= 1)")
    if any((Path(out_dir) / name).exists() for name in ("grid.log", "results.settings.json")):
        raise MdeMmrecError(
            f"{out_dir} holds a grid search (grid.log / results.settings.json): a comparison "
            "there would overwrite the grid's results.jsonl; choose another --out"
        )
    runs = []
    for cfg in configs:
        check_model(checkout, cfg.model)
        extra = dict(common or {}, **cfg.overrides)
        check_dataset(checkout, dataset, cfg.model, extra)
        file_config = {"model": cfg.model, **merged_config(checkout, cfg.model, dataset)}
        check_keys(file_config, extra, f"configuration {cfg.label!r}")
        check_single_values(file_config, extra, cfg.label)
        overrides, warnings = pin_grid(file_config, extra)
        results_file = (Path(out_dir) / "runs" / f"{cfg.slug}.jsonl").resolve()
        overrides.update(seed=list(seeds), hyper_parameters=["seed"], results_file=str(results_file), resume=True)
        if epochs:
            overrides["epochs"] = int(epochs)
        settings = run_settings(checkout, cfg.model, dataset, overrides)
        check_settings(overrides["results_file"], settings)
        runs.append((cfg, overrides, warnings, settings))
    labels = [c.label for c in configs]
    if len(set(labels)) != len(labels):
        raise MdeMmrecError(f"configuration labels must differ: {labels}")
    return runs


# ----------------------------------------------------------------------------------------- progress
def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """The one progress display: called with each line of a run's output, it shows the events (patch 0023)
    written meanwhile; the time left is an upper bound (early stopping may end a run sooner)."""

    def __init__(self, n_configs: int, epochs: int, echo: Callable[[str], None] = print):
        self.n_configs, self.epochs, self.echo = n_configs, epochs, echo
        self.start = time.time()
        self.epoch_times: list[float] = []

    def _new_run(self) -> None:
        self.construction_s: float | None = None
        self.epochs_done = 0
        self.batches: dict | None = None

    def begin(self, index: int, label: str, n_points: int, events: Path) -> None:
        self.config_index, self.label, self.n_points, self.point = index, label, n_points, 0
        self.events = Path(events)
        self.offset = self.events.stat().st_size if self.events.is_file() else 0
        self.echo(f"[{index + 1}/{self.n_configs}] {label}: {n_points} run(s) to go")
        self.last, self.tail = time.time(), []
        self._new_run()

    def __call__(self, line: str) -> None:
        self.tail = (self.tail + [line])[-40:]
        self.poll()

    def poll(self) -> None:
        if not self.events.is_file():
            return
        with open(self.events, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                self.show(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue

    def show(self, event: dict) -> None:
        kind, now = event["event"], event.get("time", time.time())
        if kind == "point":
            self.point, self.n_points, self.last = event["index"], event["of"], now
            self._new_run()
            self.echo(f"  {self.label}: run {self.point}/{self.n_points} {show_params(event.get('params', {}))}")
        elif kind == "skipped":
            self.echo(
                f"  skipping run {event['index']}/{event['of']} {show_params(event.get('params', {}))}: already done"
            )
        elif kind == "constructed":
            self.construction_s, self.last = event["seconds"], now
            self.echo(f"  {self.label}: model constructed in {self.construction_s:.1f}s")
        elif kind == "batches":
            self.batches = event
            self.echo(
                f"  {self.label} epoch {event['epoch'] + 1}/{self.epochs}: {event['done']}/{event['of']} "
                f"batches in {_hms(event['seconds'])} | elapsed {_hms(now - self.start)}"
            )
        elif kind == "trained":
            self.epochs_done += 1
            self.batches = None
        elif kind == "evaluated":
            self.epoch_times.append(now - self.last)
            self.last = now
            epoch = event["epoch"] + 1
            epochs_left = (self.epochs - epoch) + (self.n_points - max(self.point, 1)) * self.epochs
            more = self.n_configs - self.config_index - 1
            self.echo(
                f"  {self.label} run {max(self.point, 1)}/{self.n_points} epoch {epoch}/{self.epochs} "
                f"valid {float(event['valid_score']):.4f} | elapsed {_hms(now - self.start)} | this model "
                f"≤ {_hms(statistics.mean(self.epoch_times[-20:]) * epochs_left)} left"
                + (f" (+{more} more configuration(s))" if more else "")
            )

    def last_lines(self) -> str:
        return "\n".join("    " + line for line in self.tail[-15:])

    def where(self) -> str:
        if self.construction_s is None:
            return "while loading the data or constructing the model"
        text = f"after model construction ({self.construction_s:.1f}s) and {self.epochs_done} training epoch(s)"
        if self.batches:
            b = self.batches
            text += (
                f"; epoch {b['epoch'] + 1} had trained {b['done']}/{b['of']} batches in {b['seconds']:.0f}s "
                f"(at that rate about {b['seconds'] / b['done'] * b['of']:.0f}s per epoch)"
            )
        return text


def show_params(point: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def n_epochs(checkout, model: str, dataset: str, epochs: int | None) -> int:
    """The most epochs a run trains: ``--epochs``, else the config files' ``epochs``."""
    return int(epochs or merged_config(checkout, model, dataset).get("epochs") or 1000)


# ------------------------------------------------------------------------------------------- running
def run_one(
    checkout,
    model: str,
    dataset: str,
    overrides: dict,
    settings: dict,
    log_path: Path,
    progress: Progress,
    runner=None,
    limits: dict | None = None,
) -> tuple[int, str | None]:
    """One main.py run into ``overrides["results_file"]`` with its settings sidecar; (exit code, why it failed)."""
    limits = limits or {}
    record_settings(overrides["results_file"], settings)
    code = (runner or run_main)(checkout, model, dataset, overrides, log_path=log_path, on_line=progress, **limits)
    progress.poll()
    if code == 0:
        record_settings(overrides["results_file"], settings, verified=True)
        return code, None
    if code == MEMORY_LIMIT_EXIT and limits.get("max_rss_mb"):
        return code, f"killed at the {limits['max_rss_mb'] / 1024:.0f} GB memory limit (see {log_path})"
    if code == TIME_LIMIT_EXIT and limits.get("max_seconds"):
        return code, f"stopped at the {limits['max_seconds']:.0f}s time limit {progress.where()} (see {log_path})"
    return code, f"failed (exit {code}; see {log_path})"


def run_configs(
    checkout,
    dataset: str,
    configs: list[RunConfig],
    seeds: list[int],
    out_dir,
    epochs: int | None = None,
    common: dict | None = None,
    runner=None,
    echo: Callable[[str], None] = print,
    max_rss_mb: float | None = None,
    max_seconds: float | None = None,
) -> tuple[list[dict], dict[str, str]]:
    """Run each configuration over ``seeds`` through MMRec, resumably; (records, status per label: "ok" or why)."""
    with out_dir_lock(out_dir):  # one mde-mmrec run per results folder
        out_dir = Path(out_dir)
        runs = prepare(checkout, dataset, configs, seeds, out_dir, epochs, common)
        if runner is None:  # MMRec itself runs them: main.py's own checks of every configuration first
            mmrec.check_commands(
                checkout,
                [(f"configuration {cfg.label!r}", cfg.model, dataset, overrides) for cfg, overrides, _, _ in runs],
            )
        (out_dir / "runs").mkdir(parents=True, exist_ok=True)
        (out_dir / "logs").mkdir(parents=True, exist_ok=True)
        if any(c.model in MULTIMODAL_NEEDS_USER_GRAPH for c in configs):
            ensure_user_graph(checkout, dataset)
        progress = Progress(len(runs), n_epochs(checkout, configs[0].model, dataset, epochs), echo)
        limits = {k: v for k, v in (("max_rss_mb", max_rss_mb), ("max_seconds", max_seconds)) if v}
        status = {cfg.label: "ok" for cfg in configs}
        for index, (cfg, overrides, warnings, settings) in enumerate(runs):
            for w in warnings:
                echo(f"  note: {cfg.label}: pinned {w}")
            results_file = overrides["results_file"]
            done = {r.get("seed") for r in finished_with_recorded_settings(results_file)}
            todo = [s for s in seeds if s not in done]
            if not todo:
                echo(
                    f"[{index + 1}/{len(runs)}] {cfg.label}: all {len(seeds)} seed(s) already in {results_file}, "
                    "skipped"
                )
                continue
            if done & set(seeds):
                echo(f"  {cfg.label}: seed(s) {sorted(done & set(seeds))} already done, skipped")
            log_path = out_dir / "logs" / f"{cfg.slug}.log"
            progress.begin(index, cfg.label, len(todo), events_file(log_path))
            code, why = run_one(checkout, cfg.model, dataset, overrides, settings, log_path, progress, runner, limits)
            if why:
                status[cfg.label] = why
                tail = "" if code in (MEMORY_LIMIT_EXIT, TIME_LIMIT_EXIT) else f"; last lines:\n{progress.last_lines()}"
                echo(f"  {cfg.label}: {why}{tail}")
        records = []  # the finished runs of these seeds (a results file may hold others), also in OUT/results.jsonl
        for cfg, overrides, _, _ in runs:
            chosen = {k: v for k, v in overrides.items() if k not in results_log()._NOT_SETTINGS}  # not scheduling
            lines = [r for r in results_log().read_results(overrides["results_file"]) if r.get("seed") in seeds]
            failed = [r for r in lines if r.get("failed")]  # seeds without a result (NaN loss): say which, and why
            records += [dict(r, label=cfg.label, overrides=chosen) for r in lines if not r.get("failed")]
            if failed and (status[cfg.label] == "ok" or status[cfg.label].startswith("failed (exit")):
                status[cfg.label] = (
                    f"failed for seed(s) {', '.join(str(r['seed']) for r in failed)}: {failed[0]['failed']}"
                )
                echo(f"  {cfg.label}: {status[cfg.label]}")
        results_log().write_records(out_dir / "results.jsonl", records)
        return records, status


def seed_list(n: int | None, values: list[int] | None = None) -> list[int]:
    """``--seed-values`` as given (each once), else ``n`` seeds from MMRec's default seed on."""
    return list(dict.fromkeys(values)) if values else [DEFAULT_SEED + i for i in range(n or 1)]


# ------------------------------------------------------------------------------------------------ CLI
def add_run_args(p: argparse.ArgumentParser, out_default: str, seeds: int = 1) -> None:
    """The options of every command that runs MMRec (``seeds``: the command's default number of seeds)."""
    p.add_argument("--mmrec", required=True, help="path to the patched MMRec checkout (mde-mmrec install)")
    p.add_argument("-d", "--dataset", required=True, help="data set name (src/configs/dataset/NAME.yaml)")
    p.add_argument("--out", help=f"results folder (default: {out_default})")
    p.add_argument("--epochs", type=positive_int, help="maximum epochs per run (default: the config's, early stopping)")
    p.add_argument(
        "--set",
        action="append",
        metavar="[MODEL:]KEY=VALUE",
        help="config override for one model (MODEL:key=value) or all (key=value); repeatable",
    )
    p.add_argument(
        "--seeds",
        type=positive_int,
        help=f"number of seeds ({DEFAULT_SEED}, {DEFAULT_SEED + 1}, ...; default {seeds}; 3 or more give mean ± std)",
    )
    p.add_argument("--seed-values", type=non_negative_int, nargs="+", help="explicit seeds instead")


def command_line() -> str:
    """The command as typed (for the notes under the tables)."""
    return "mde-mmrec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
