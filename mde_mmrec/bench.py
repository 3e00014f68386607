"""`mde-mmrec bench`: MDE against FREEDOM and DRAGON on a synthetic preset, measured side by side.

Per model, one MMRec run (its own trainer, a fixed number of epochs, one seed) gives seconds per epoch and per
evaluation, model construction time and peak RSS; child processes time MDE's graphs (built from nothing, then
loaded from its cache), each model's share of an evaluation pass and, with ``--profile-steps N``, a training
step. ``--max-rss-gb`` and ``--max-minutes`` stop a run cleanly. The table goes to
``bench/results/<preset>-<date>.md`` (``-2``, ``-3``... for later runs that day), rewritten after each
measurement and marked partial until the last; the output ends with one ``RATIO`` line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import multiprocessing
import os
import platform
import resource
import sys
import time
import timeit
from pathlib import Path

import numpy as np

from . import core, mmrec, report, runner, synthetic
from .errors import MdeMmrecError, non_negative_float, non_negative_int, positive_int
from .report import fmt, fmt_seconds

# Grid keys pinned for the benchmark where the first grid value would be a poor setting (DRAGON's grid starts
# at learning_rate 0.1); other models' grid keys take their first value (printed by the run).
BENCH_SETTINGS = {"DRAGON": {"learning_rate": 0.001, "reg_weight": 0.001}}


def enter_checkout(checkout: Path) -> None:
    """Import MMRec's modules from CHECKOUT/src with it as the working directory (as main.py runs); for the child
    process of one measurement (``in_child``), which ends with it."""
    src = str(Path(checkout) / "src")
    os.chdir(src)
    sys.path.insert(0, src)


# What the patched main.py sets before importing torch (patch 0014), unless the environment sets it: children
# that time MMRec's code run with the same allocator settings as the MMRec runs they are compared with.
MAIN_PY_ENVIRONMENT = {"THP_MEM_ALLOC_ENABLE": "1"}


def in_child(fn, *args, max_rss_mb: float | None = None):
    """Run ``fn(*args)`` in a fresh process (spawned, so nothing is shared with this one) under a memory
    guard; returns (result or None, error message or None, the child's peak RSS in MB)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child_main, args=(queue, fn, args, os.getpid()))
    child.start()
    guard = runner.RunGuard(child.pid, max_rss_mb)
    child.join()
    guard.stop()
    if guard.killed:
        return None, f"killed at {guard.peak_mb / 1024:.1f} GB resident memory", guard.peak_mb
    if queue.empty():
        return None, f"died with exit code {child.exitcode}", guard.peak_mb
    return queue.get()


def _child_main(queue, fn, args, parent_pid: int) -> None:
    runner.die_with_parent(parent_pid)  # a killed bench leaves no child computing on
    for key, value in MAIN_PY_ENVIRONMENT.items():  # before fn imports torch; a value the user set wins
        os.environ.setdefault(key, value)
    try:
        result, error = fn(*args), None
    except Exception as exc:  # reported to the parent, which decides
        result, error = None, f"{type(exc).__name__}: {exc}"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    queue.put((result, error, peak / (1024 * 1024 if sys.platform == "darwin" else 1024)))


def mde_graph_seconds(checkout: Path, dataset: str, load_only: bool = False) -> dict:
    """Build MDE's three homogeneous graphs from nothing, as the model does (unless ``load_only``); then
    load the copies that MDE cached beside the data set."""
    import pandas as pd
    import scipy.sparse as sp
    import torch

    enter_checkout(checkout)
    from utils import mde_graphs  # the installed copy of src/utils/mde_graphs.py

    cfg = core.merged_config(checkout, "MDE", dataset)
    data_dir = Path(cfg.get("data_path", "../data/")) / dataset
    inter = pd.read_csv(data_dir / cfg["inter_file_name"], sep="\t")
    users, items = inter[cfg["USER_ID_FIELD"]], inter[cfg["ITEM_ID_FIELD"]]
    train = inter[cfg["inter_splitting_label"]] == 0
    r = sp.csr_matrix(
        (np.ones(train.sum(), dtype=np.float32), (users[train].values, items[train].values)),
        shape=(int(users.max()) + 1, int(items.max()) + 1),
    )
    seconds = {}
    if not load_only:
        seconds["user_cooc"] = timeit.timeit(lambda: mde_graphs.cooccurrence_topk(r, int(cfg["user_knn_k"])), number=1)
        for name, key in (("item_knn_v", "vision_feature_file"), ("item_knn_t", "text_feature_file")):
            feat = torch.from_numpy(np.load(data_dir / cfg[key]))
            seconds[name] = timeit.timeit(
                lambda feat=feat: mde_graphs.cosine_knn(feat, int(cfg["item_knn_k"])), number=1
            )
    cached = sorted((data_dir / "mde_graphs").glob("*.npz"))
    load = timeit.timeit(lambda: [sp.load_npz(p) for p in cached], number=1) if cached else float("nan")
    return {"build_s": sum(seconds.values()), "parts": seconds, "load_s": load, "cached_files": len(cached)}


def build_model(checkout: Path, dataset: str, model_name: str) -> tuple:
    """MMRec's objects for one model at its first grid point (``BENCH_SETTINGS`` applied), built as
    utils/quick_start.py builds them, its ``pre_epoch_processing`` done (in the child process of one
    measurement): ``(config, model, trainer, train_data, valid_data, test_data)``."""
    enter_checkout(checkout)
    from utils.configurator import Config
    from utils.dataloader import EvalDataLoader, TrainDataLoader
    from utils.dataset import RecDataset
    from utils.utils import get_model, get_trainer, init_seed

    config = Config(model_name, dataset, {"gpu_id": 0})
    # one grid point: the first value of each list, but BENCH_SETTINGS where it pins one
    first = {key: config[key][0] for key in config["hyper_parameters"] if isinstance(config[key], list)}
    for key, value in {**first, **BENCH_SETTINGS.get(model_name, {})}.items():
        config[key] = value
    init_seed(config["seed"])
    splits = RecDataset(config).split()
    for split in splits:
        str(split)  # MMRec computes a split's statistics (inter_num, used by its loaders) in __str__
    train, valid, test = splits
    train_data = TrainDataLoader(config, train, batch_size=config["train_batch_size"], shuffle=True)
    # the loaders of utils/quick_start.py: both mask the training history
    valid_data, test_data = (
        EvalDataLoader(config, s, additional_dataset=train, batch_size=config["eval_batch_size"]) for s in (valid, test)
    )
    train_data.pretrain_setup()  # as quick_start does before building each model
    model = get_model(model_name)(config, train_data).to(config["device"])
    trainer = get_trainer()(config, model)
    if hasattr(model, "pre_epoch_processing"):
        model.pre_epoch_processing()  # once, not timed
    return config, model, trainer, train_data, valid_data, test_data


def model_eval_seconds(checkout: Path, dataset: str, model_name: str, repeats: int = 3) -> float:
    """The model's share of one evaluation round: the time of the ``full_sort_predict`` calls that the patched
    trainer makes to evaluate the valid and then the test users (best of ``repeats``)."""
    config, model, trainer, _, valid_data, test_data = build_model(checkout, dataset, model_name)
    from utils.shared_topk import SharedTopk

    seconds = []  # per repeat: the time inside full_sort_predict
    predict = model.full_sort_predict

    def timed_predict(interaction):
        _synchronize(config["device"])
        start = time.perf_counter()
        scores = predict(interaction)
        _synchronize(config["device"])  # CUDA runs asynchronously: wait before reading the clock
        seconds[-1] += time.perf_counter() - start
        return scores

    model.full_sort_predict = timed_predict
    for _ in range(repeats):  # as Trainer.fit evaluates after an epoch (patch 0013)
        model.train()
        seconds.append(0.0)
        ranked = SharedTopk()
        trainer.evaluate(valid_data, ranked=ranked)
        trainer.evaluate(test_data, ranked=ranked)
    return float(min(seconds))


PROFILED_STEPS = 5  # of the timed steps, how many more run under torch.profiler (it slows them down)


def training_step_profile(checkout: Path, dataset: str, model_name: str, steps: int = 20) -> dict:
    """Where one training step goes: ms per step of MMRec's own ``Trainer._train_epoch`` over batches drawn
    beforehand (mean of ``steps`` after 2 warm-up steps), ms per batch of MMRec's loader, and ``profile_counts``
    of ``PROFILED_STEPS`` more steps under torch.profiler (the report's "Per training step" section says more)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    config, _, trainer, train_data, _, _ = build_model(checkout, dataset, model_name)
    device = config["device"]
    start = time.perf_counter()
    batches = list(train_data)  # one pass of MMRec's loader
    loader_ms = 1000 * (time.perf_counter() - start) / len(batches)

    def train(batches):
        losses = trainer._train_epoch(batches, 0)
        if not isinstance(losses[1], list):  # the trainer stopped at a NaN or infinite loss
            raise MdeMmrecError(f"{model_name}'s training loss became NaN or infinite while profiling")
        _synchronize(device)

    # a copy per step, made before timing: some models (DRAGON) shift a batch's item ids in place
    cycle = [batches[i % len(batches)].clone() for i in range(steps + 2 + PROFILED_STEPS)]
    train(cycle[:2])
    start = time.perf_counter()
    train(cycle[2 : steps + 2])
    step_ms = 1000 * (time.perf_counter() - start) / steps
    cuda = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        train(cycle[steps + 2 :])
    counts = profile_counts(prof.events(), PROFILED_STEPS)
    return {"step_ms": step_ms, "loader_ms": loader_ms, **counts, "cuda": cuda}


def profile_counts(events, steps: int) -> dict:
    """Per step, from torch.profiler's events: ``ops``, the top-level aten operators; ``device_activities`` and
    ``device_ms``, the CUDA kernels and copies and their summed time (None without CUDA events)."""
    from torch.autograd import DeviceType

    # not a record_function range on the GPU timeline (the optimizer's step): it spans kernels counted already
    device = [e for e in events if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)]
    top_level_ops = [
        e
        for e in events
        if e.device_type != DeviceType.CUDA
        and e.name.startswith("aten::")
        and not (e.cpu_parent and e.cpu_parent.name.startswith("aten::"))
    ]
    return {
        "ops": len(top_level_ops) / steps,
        "device_activities": len(device) / steps if device else None,
        "device_ms": sum(e.time_range.elapsed_us() for e in device) / 1000 / steps if device else None,
    }


def _synchronize(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def run_bench(
    checkout: Path,
    preset: str,
    models: list[str],
    epochs: int,
    seed: int,
    out_dir: Path,
    max_rss_mb: float | None = None,
    eval_share: bool = True,
    max_seconds: float | None = None,
    profile_steps: int = 0,
    echo=print,
) -> tuple[Path, str]:
    """Run the benchmark; the Markdown report is rewritten after each measurement (marked partial until the
    last), so a bench stopped from outside still leaves what it measured. Returns (report path, RATIO line)."""
    dataset = f"synthetic_{preset}"  # never over MMRec's real baby etc.
    echo(f"== bench: preset {preset} (data set {dataset}), models {' '.join(models)}, {epochs} epoch(s)")
    synthetic.make_dataset(checkout, dataset, preset=preset, seed=0)
    graphs = {}
    if "MDE" in models:
        echo("== MDE graphs from nothing (in a child process)")
        result, error, peak = in_child(mde_graph_seconds, checkout, dataset, max_rss_mb=max_rss_mb)
        graphs = dict(result or {}, error=error, peak_rss_mb=peak)
        echo(
            f"   {error}"
            if error
            else f"   built in {graphs['build_s']:.2f}s ("
            + ", ".join(f"{k} {v:.2f}s" for k, v in graphs["parts"].items())
            + f"), peak RSS {peak:.0f} MB"
        )
        for cache in (Path(checkout) / "data" / dataset / "mde_graphs").glob("*.npz"):
            cache.unlink()  # so that the MMRec run's model construction also builds from nothing
    # a fresh folder per invocation: a benchmark measures, it never resumes earlier runs
    run_dir = Path(out_dir) / "runs" / f"{preset}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    for m in models:
        core.check_model_exists(checkout, m)  # a misspelt model is an error; one that cannot run here a row
    configs, not_run = core.runnable(
        [core.RunConfig(m, m, dict(BENCH_SETTINGS.get(m, {}))) for m in models], core.cuda_available(), checkout
    )
    for label, reason in not_run.items():
        echo(f"  {label}: {reason}")
    optional = {  # flag: whether the command line had it
        f"--max-minutes {(max_seconds or 0) / 60:g}": max_seconds,
        "--no-eval-share": not eval_share,
        f"--profile-steps {profile_steps}": profile_steps,
    }
    flags = [f"--seed {seed}", f"--max-rss-gb {(max_rss_mb or 0) / 1024:g}"] + [f for f, on in optional.items() if on]
    by_model, status, shares, profiles = {}, dict(not_run), {}, {}
    md = None

    def write(final: bool = False) -> str | None:
        nonlocal md
        rows = _main_rows(models, by_model, status, shares if eval_share else None, graphs, final)
        section = _step_section(models, by_model, status, profiles, profile_steps, final) if profile_steps else ""
        ratio = _ratio_line(by_model, graphs) if final else None
        md = _write_markdown(out_dir, preset, dataset, models, epochs, rows, ratio, " ".join(flags), section, md)
        return ratio

    write()
    for config in configs:  # one model at a time, so that the report grows run by run
        records, run_status = core.run_configs(
            checkout,
            dataset,
            [config],
            [seed],
            run_dir,
            epochs=epochs,
            echo=echo,
            max_rss_mb=max_rss_mb,
            max_seconds=max_seconds,
        )
        status.update(run_status)
        by_model.update({r["label"]: r for r in records})
        core.results_log().write_records(run_dir / "results.jsonl", list(by_model.values()))  # each run wrote its own
        if config.model == "MDE" and "MDE" in by_model and not graphs.get("error"):  # its run cached the graphs
            loaded = in_child(mde_graph_seconds, checkout, dataset, True)[0]
            graphs["load_s"] = loaded["load_s"] if loaded else float("nan")
        write()
    ran = [m for m in models if m in by_model]
    size = synthetic.PRESETS[preset].n_users * synthetic.PRESETS[preset].n_items
    measurements = [  # (what, whether asked for, the function's last argument, where its (result, error) go)
        ("timing its share of an evaluation pass", eval_share, model_eval_seconds, 5 if size < 10**9 else 1, shares),
        (f"profiling {profile_steps} training steps", profile_steps, training_step_profile, profile_steps, profiles),
    ]
    for what, asked, fn, last_argument, results in measurements:
        for m in ran if asked else []:
            echo(f"== {m}: {what} (in a child process)")
            results[m] = in_child(fn, checkout, dataset, m, last_argument, max_rss_mb=max_rss_mb)[:2]
            write()
    ratio = write(final=True)
    return md, ratio


def _waiting(model: str, status: dict, final: bool) -> str:
    """What a row says for a model without a result: why (it failed, or cannot run here), or that it is next."""
    return status.get(model, "not run" if final else "pending: the bench has not got to it yet")


# the headers of the report's two tables, as they read in Markdown
MAIN_COLUMNS = "model | model construction s | train s/epoch | eval s (valid+test) | model's eval share s | peak RSS MB | peak GPU MB | valid Recall@20 | notes"
STEP_COLUMNS = (
    "model | step ms | loader ms/batch | aten ops per step | device activities per step | device ms per step | notes"
)


def _main_rows(models, by_model: dict, status: dict, shares: dict | None, graphs: dict, final: bool) -> list:
    """The main table: one row per model (``shares`` None: not timed, else model -> (seconds, error))."""
    rows = []
    for m in models:
        r = by_model.get(m)
        if r is None:
            rows.append([m, "-", "-", "-", "-", "-", "-", "-", _waiting(m, status, final)])
        else:
            share, error = (None, None) if shares is None else shares.get(m, (None, None if final else "pending"))
            note = (
                "ok"
                if m != "MDE" or graphs.get("error")
                else (
                    f"graphs built in {graphs['build_s']:.2f}s on the CPU (peak RSS {graphs['peak_rss_mb']:.0f} MB), "
                    f"loaded in {graphs.get('load_s', float('nan')):.3f}s"
                )
            )
            rows.append(
                [
                    m,
                    fmt_seconds(r.get("model_init_s")),
                    fmt_seconds(r.get("s_per_epoch")),
                    fmt_seconds(r.get("eval_s")),
                    error or fmt_seconds(share),
                    fmt(r.get("peak_rss_mb"), 0),
                    fmt(r.get("peak_gpu_mb"), 0),
                    fmt(r["best_valid"].get("recall@20"), 4),
                    note,
                ]
            )
    return rows


def _step_section(models, by_model: dict, status: dict, profiles: dict, steps: int, final: bool) -> str:
    """The ``--profile-steps`` table: ``profiles`` maps a model to (``training_step_profile``'s dict, error)."""
    rows = []
    for m in models:
        result, error = profiles.get(m, (None, None))
        if result is None:
            reason = error or (_waiting(m, status, final) if m not in by_model else "not run" if final else "pending")
            rows.append(
                [m, "-", "-", "-", "-", "-", reason if reason.startswith("pending") else f"not profiled: {reason}"]
            )
        else:
            cuda_note = (
                "no CUDA: device columns empty"
                if not result["cuda"]
                else "no CUDA events recorded (is CUPTI missing?)"
                if result["device_activities"] is None
                else "ok"
            )
            rows.append(
                [
                    m,
                    fmt(result["step_ms"], 1),
                    fmt(result["loader_ms"], 1),
                    fmt(result["ops"], 0),
                    fmt(result["device_activities"], 0),
                    fmt(result["device_ms"], 2),
                    cuda_note,
                ]
            )
    return (
        "## Per training step\n\n"
        f"Each model rebuilt in a child process, {steps} steps timed after 2 warm-up steps, then "
        f"{PROFILED_STEPS} more under torch.profiler. Step: MMRec's own training loop over batches drawn "
        "beforehand (zero_grad, calculate_loss, the `.item()` of its losses, the NaN check, backward, "
        "optimizer step), synchronised on CUDA; loader: MMRec's training loader per batch over one pass (negative sampling "
        "included). aten ops: operators called "
        "from Python or the autograd engine (forward, backward, optimizer), each costing host time, most "
        "launching a GPU kernel; device activities: CUDA kernels and copies, with their summed time. Where "
        "device ms is far below step ms the GPU waits for the host.\n\n"
        + report.markdown_table(STEP_COLUMNS.split(" | "), rows)
        + "\n\n"
    )


def _ratio_line(by_model: dict, graphs: dict) -> str:
    def ratio(a: str, b: str, key: str) -> str:
        if a in by_model and b in by_model and by_model[b].get(key):
            return f"{by_model[a][key] / by_model[b][key]:.3f}"
        return "nan"

    build = graphs.get("build_s") if not graphs.get("error") else None
    return (
        f"RATIO mde/freedom_epoch={ratio('MDE', 'FREEDOM', 's_per_epoch')} "
        f"mde/dragon_epoch={ratio('MDE', 'DRAGON', 's_per_epoch')} "
        f"mde_graph_build_s={'nan' if build is None else f'{build:.2f}'} "
        f"mde/freedom_rss={ratio('MDE', 'FREEDOM', 'peak_rss_mb')}"
    )


def machine_description() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:  # Linux: the CPU's model
        cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = f"GPU {torch.cuda.get_device_name(0)} (the MMRec runs' device), " if torch.cuda.is_available() else ""
    return (
        f"{gpu}{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )


def _write_markdown(
    out_dir: Path,
    preset: str,
    dataset: str,
    models,
    epochs: int,
    rows,
    ratio: str | None,
    flags: str = "",
    steps_section: str = "",
    path: Path | None = None,
) -> Path:
    """Write the report to ``path`` (default: a new ``<preset>-<date>.md`` in ``out_dir``, ``-2``, ``-3``... if
    taken: results are never overwritten); ``ratio`` None marks it partial."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if path is None:
        stem, n = f"{preset}-{datetime.date.today().isoformat()}", 2
        path = out_dir / f"{stem}.md"
        while path.exists():
            path, n = out_dir / f"{stem}-{n}.md", n + 1
    body = (
        f"Machine: {machine_description()}.\n\n"
        f"Command: `mde-mmrec bench --mmrec MMREC --preset {preset} --epochs {epochs} "
        f"--models {' '.join(models)}{' ' + flags if flags else ''}`; data set `{dataset}` (data seed 0), one MMRec run per model, MMRec's "
        f"first grid point, {epochs} epoch(s), all measured in the same run.\n\n"
        + report.markdown_table(MAIN_COLUMNS.split(" | "), rows)
        + "\n\n"
        "Model construction includes graph building (MDE: from nothing, its cache was emptied first). "
        "The model's eval share is the time of the `full_sort_predict` calls that MMRec's (patched) "
        "trainer makes to evaluate the valid and then the test users, best of 5 (one round for "
        "Elec-sized presets); eval s is MMRec's whole evaluation, ranking and metrics included.\n\n"
        + steps_section
        + (
            f"`{ratio}`"
            if ratio
            else "**Partial:** the bench was still running when this was written, or was stopped; "
            "the complete report ends with its RATIO line."
        )
    )
    return report.write_markdown(path, f"Benchmark: synthetic `{preset}` preset", body)


def _cmd_bench(args: argparse.Namespace) -> int:
    checkout = mmrec.find_checkout(args.mmrec)
    synthetic.get_preset(args.preset)  # an unknown preset is an error before anything runs
    md, ratio = run_bench(
        checkout,
        args.preset,
        args.models,
        args.epochs,
        args.seed,
        Path(args.out),
        max_rss_mb=args.max_rss_gb * 1024 if args.max_rss_gb else None,
        eval_share=not args.no_eval_share,
        max_seconds=args.max_minutes * 60 if args.max_minutes else None,
        profile_steps=args.profile_steps,
    )
    print(md.read_text(encoding="utf-8"))
    print(f"written to {md}")
    print(ratio)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="time MDE against FREEDOM and DRAGON on a synthetic preset", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--mmrec", required=True, help="path to the patched MMRec checkout")
    p.add_argument("--preset", default="baby", help=f"synthetic preset ({', '.join(synthetic.PRESETS)}; default baby)")
    p.add_argument("--models", nargs="+", default=["MDE", "FREEDOM", "DRAGON"])
    p.add_argument("--epochs", type=positive_int, default=2, help="training epochs per model (default 2)")
    p.add_argument("--seed", type=int, default=999)
    p.add_argument("--out", default="bench/results", help="folder for the Markdown result")
    p.add_argument(
        "--no-eval-share",
        action="store_true",
        help="skip timing each model's share of an evaluation pass (it rebuilds each model)",
    )
    p.add_argument(
        "--max-rss-gb",
        type=non_negative_float,
        default=20.0,
        help="kill a run whose resident memory passes this (default 20; 0 = no limit)",
    )
    p.add_argument(
        "--max-minutes",
        type=non_negative_float,
        default=0.0,
        help="stop a model's MMRec run after this many minutes; the table says how far it got "
        "(construction, epochs, batches of the epoch). Default 0 = no limit",
    )
    p.add_argument(
        "--profile-steps",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="also time N training steps of each model outside MMRec's loop and count the operators "
        "(and, on CUDA, the kernels and their time) of a step with torch.profiler; a second table "
        "says where a step's time goes. Default 0 = off",
    )
    p.set_defaults(func=_cmd_bench)
