#!/usr/bin/env bash
# One prepared GPU check (a machine with CUDA): seconds per epoch of MDE, FREEDOM and DRAGON at the Baby and
# Elec shapes through `mde-mmrec bench`, MDE's CUDA tier-1 test, and a small learning-rate / sigma grid of
# MDE on the Baby-shaped preset. Each step has its own time limit, so a slow step cannot hide the others.
#
#   bench/gpu.sh PATH/TO/MMRec OUT_DIR      (OUT_DIR gets the Markdown tables, the grid summary and run logs)
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
step 150 $cli bench --mmrec "$MMREC" --preset baby --epochs 2 --out "$OUT"
step 200 $cli bench --mmrec "$MMREC" --preset elec --epochs 1 --out "$OUT"
step 120 $cli grid --mmrec "$MMREC" -d synthetic_baby --epochs 15 --out "$OUT/grid" \
    --set "learning_rate=[0.001,0.005]" --set "cl_weight=[0.01,0.1]" --set "diff_weight=[0.01,0.1]" \
    --set "reg_weight=0.0001"
