#!/usr/bin/env bash
# One prepared GPU check (a machine with CUDA), sized for one 10-minute device call: MDE's CUDA tier-1 test,
# then seconds per epoch at the Elec shape for FREEDOM and DRAGON (DRAGON's user graph built first, timed),
# at the Baby shape for MDE, FREEDOM and DRAGON, and at the Elec shape for MDE, each through `mde-mmrec bench`.
# Each step has its own time limit, so a slow step cannot hide the others; the most wanted numbers come first.
#
#   bench/gpu.sh PATH/TO/MMRec OUT_DIR      (OUT_DIR gets the Markdown tables)
set -u
MMREC=${1:?usage: bench/gpu.sh PATH/TO/MMRec OUT_DIR}
OUT=${2:-bench/results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
cli="python3 -m mde_mmrec.cli"
step() { local limit=$1; shift; echo "== $(date +%T) $* (limit ${limit}s)"; timeout "$limit" "$@"; echo "== exit $?"; }

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
step 60 python3 -m pytest -q -p no:cacheprovider tests/test_mde_model.py -k "configured_device or same_seed"
step 30 $cli install "$MMREC"
step 60 $cli make-data --mmrec "$MMREC" synthetic_elec
step 60 $cli user-graph --mmrec "$MMREC" -d synthetic_elec
step 240 $cli bench --mmrec "$MMREC" --preset elec --epochs 1 --models FREEDOM DRAGON --no-eval-share --out "$OUT"
step 120 $cli bench --mmrec "$MMREC" --preset baby --epochs 2 --out "$OUT"
step 90 $cli bench --mmrec "$MMREC" --preset elec --epochs 1 --models MDE --no-eval-share --out "$OUT/elec-mde"
