#!/usr/bin/env bash
# One prepared GPU check (a machine with CUDA), sized for one 10-minute device call. In order of need:
#   1. the CUDA tier-1 tests (MDE on the configured device, peak GPU memory in the results line);
#   2. seconds per epoch at the Elec shape for FREEDOM and DRAGON (data and DRAGON's user graph built first,
#      timed), each MMRec run stopped after MINUTES (default 3) by `bench --max-minutes`: a run stopped
#      mid-epoch is reported with its construction time and the batches it trained (the progress lines of
#      patch 0015), so the step always ends with a table;
#   3. Baby shape, MDE, FREEDOM and DRAGON;  4. Elec shape, MDE.
# Each step has its own time limit, so a slow step cannot hide the others. OUT_DIR gets, flat, one Markdown
# table per bench step and the MMRec logs of the Elec runs.
#
#   bench/gpu.sh PATH/TO/MMRec OUT_DIR [MINUTES]
#
# Through this workplace's device tool (no package index there: MMRec and the lmdb wheel travel with the
# working tree, both ignored by .git/info/exclude):
#   git clone PRISTINE_MMREC .mmrec; python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_17_x86_64 -d .whl lmdb
#   run(carry=[".mmrec", ".whl"], timeout_s=600, command="python3 -m pip install -q --no-index --no-deps
#     --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD; bash bench/gpu.sh .mmrec $OUT")
set -u
MMREC=${1:?usage: bench/gpu.sh PATH/TO/MMRec OUT_DIR [MINUTES]}
OUT=${2:-bench/results}
MINUTES=${3:-3}
WORK=$(mktemp -d)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
cli="python3 -m mde_mmrec.cli"
step() { local limit=$1; shift; echo "== $(date +%T) $* (limit ${limit}s)"; timeout "$limit" "$@"; echo "== exit $?"; }
# bench NAME ARGS...: one bench run into WORK/NAME; its table (and, for Elec, its logs) copied to OUT as NAME-*
bench() {
    local name=$1 limit=$2; shift 2
    step "$limit" $cli bench --mmrec "$MMREC" --out "$WORK/$name" "$@"
    for f in "$WORK/$name"/*.md; do [ -e "$f" ] && cp "$f" "$OUT/$name.md"; done
    case $name in elec*) for f in "$WORK/$name"/runs/*/logs/*.log; do
        [ -e "$f" ] && cp "$f" "$OUT/$name-$(basename "$f")"; done;; esac
}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
step 60 python3 -m pytest -q -p no:cacheprovider tests/test_mde_model.py tests/test_results_log.py \
    -k "configured_device or same_seed or peak_gpu"
step 30 $cli install "$MMREC"
step 90 $cli make-data --mmrec "$MMREC" synthetic_elec
step 90 $cli user-graph --mmrec "$MMREC" -d synthetic_elec
bench elec-baselines $((MINUTES * 120 + 90)) --preset elec --epochs 1 --models FREEDOM DRAGON --no-eval-share \
    --max-minutes "$MINUTES"
bench baby 150 --preset baby --epochs 2
bench elec-mde 120 --preset elec --epochs 1 --models MDE --no-eval-share --max-minutes "$MINUTES"
