#!/usr/bin/env bash
# The GPU measurements of docs/performance.md, on a machine with CUDA, in steps that fit a time limit.
#
#   bench/gpu.sh PATH/TO/MMRec OUT_DIR [STEP ...]
#
# Steps, in order of need (default: all of them, in this order):
#   tests         the CUDA tier-1 tests: MDE trains on the GPU like on the CPU (its kNN graphs built there),
#                 its compiled losses equal eager mode's, the exact kNN and the shared top-k on CUDA, peak GPU
#                 memory in the results line
#   elec-data     install the plugin; Elec-shaped data (generated) and DRAGON's user graph (built, timed)
#   elec-freedom  FREEDOM at the Elec shape, 1 epoch   } seconds per epoch on a GPU. A run stopped mid-epoch
#   elec-dragon   DRAGON at the Elec shape, 1 epoch    } reports its construction time and the batches it
#                                                        trained (patch 0015's progress lines)
#   baby          MDE, FREEDOM and DRAGON at the Baby shape, 2 epochs, and 20 training steps of each profiled
#                 (ms per step, loader, operators, CUDA kernels and their time: why MDE's GPU epoch is slower
#                 than FREEDOM's at this size)
#   elec-mde      MDE at the Elec shape, 1 epoch
#   baby-ratio    MDE and FREEDOM at the Baby shape, 3 epochs and 20 profiled steps each, as shipped (OUT/baby-ratio)
#                 and in a copy of the checkout whose MDE.yaml sets compile_losses: True (OUT/baby-ratio-compiled):
#                 both RATIO lines, step ms, operators and kernels (the first epoch includes the compilation)
#   baby-loader   the same, 1 epoch, in a copy of the checkout without patch 0024, MMRec's per-user negative
#                 sampling loop (OUT/baby-loader): loader ms per batch against baby-ratio's
# Time: the script ends within BUDGET_S (env GPU_BUDGET_S, default 550) seconds: each step's limit is cut to
# what is left, and a step is skipped when less than it needs is left. A model's MMRec run is stopped
# after at most RUN_S (env GPU_RUN_S, default 240) seconds. A step that succeeds (or tests that ran) is recorded
# in MMREC/.gpu-steps-done and skipped when the script runs again on the same machine, so a second run
# continues with the steps left. To run a step again, name it and remove its line from that file. Without CUDA
# the script stops at once (GPU_ALLOW_CPU=1 runs it anyway, for rehearsals and tests).
# OUT_DIR gets gpu.log (all output), pytest-cuda.xml and, per bench step, the folder OUT_DIR/STEP that bench
# writes as it goes (its Markdown report, rewritten after each measurement and marked partial until the end,
# and runs/ with each MMRec run's log and results lines), so a run cut off still leaves what it measured.
# After each step, OUT_DIR/runs.tgz holds every step's runs/ so far, in one file.
# Times on one H200 (bench/results/*-h200*.md): tests, elec-data, elec-freedom and elec-dragon take about
# 470 s together (DRAGON's Elec epoch, about 830 s there, never fits: its step measures its rate); baby
# about 240 s; elec-mde about 2 minutes (its graphs in a child 24 s, MMRec's Elec loading about 50 s,
# construction, epoch and evaluation about 35 s). tests and baby-ratio, first, fit one 550 s budget: the CUDA
# tests compile MDE's losses once (Triton), baby-ratio runs two Baby benches of two models (not yet timed there).
#
# On a machine without a package index: install the lmdb wheel from a folder first, e.g.
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
#   bash bench/gpu.sh PATH/TO/MMRec OUT_DIR
set -u -o pipefail
MMREC=${1:?usage: bench/gpu.sh PATH/TO/MMRec OUT_DIR [STEP ...]}
OUT=${2:?usage: bench/gpu.sh PATH/TO/MMRec OUT_DIR [STEP ...]}
shift 2
ALL_STEPS="tests baby-ratio elec-data elec-freedom elec-dragon baby elec-mde baby-loader"
STEPS=${*:-$ALL_STEPS}
for name in $STEPS; do
    case " $ALL_STEPS " in *" $name "*) ;; *) echo "bench/gpu.sh: unknown step $name (steps: $ALL_STEPS)"; exit 2 ;; esac
done
BUDGET_S=${GPU_BUDGET_S:-550}
RUN_S=${GPU_RUN_S:-240}
DONE="$MMREC/.gpu-steps-done"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-python3}
cli="$PYTHON -m mde_mmrec.cli"

# step NAME WANT NEED COMMAND...: COMMAND under a time limit of WANT seconds, or what is left of the budget;
# skipped when it ended in an earlier run, or when less than NEED seconds are left. LIMIT holds the limit.
step() {
    local name=$1 want=$2 need=$3 left rc pid started=$SECONDS
    shift 3
    if grep -qx "$name" "$DONE" 2>/dev/null; then echo "== $name: ended in an earlier run, skipped"; return; fi
    left=$((BUDGET_S > SECONDS ? BUDGET_S - SECONDS : 0))
    if [ "$left" -lt "$need" ]; then
        echo "== $name: skipped, ${left}s of the budget left and it needs ${need}s: run again"; return
    fi
    export LIMIT=$((want < left ? want : left))
    echo "== $(date +%T) $name (limit ${LIMIT}s, ${left}s of the budget left): $*"
    timeout -k 10 "$LIMIT" "$@" &   # timeout leads its own process group: killed whole below, so nothing
    pid=$!                          # of a stopped step (a main.py finishing its SIGTERM) runs into the next
    wait "$pid"
    rc=$?
    kill -KILL -- "-$pid" 2>/dev/null
    echo "== $name: exit $rc after $((SECONDS - started))s"
    case $name:$rc in
        *:124|*:137) echo "== $name: stopped at its limit" ;;
        *:0|tests:1) echo "$name" >> "$DONE" ;;   # test failures are a result too; other failures are retried
        *) echo "== $name: failed; a later run tries it again" ;;
    esac
    archive_runs
}

# archive_runs: OUT/runs.tgz, every bench step's runs/ (MMRec logs, results lines) so far, in one file
# (OUT/STEP/runs/RUN/logs/MODEL.log lies four folders deep).
archive_runs() {
    local folders
    folders=$(cd "$OUT" && find . -mindepth 2 -maxdepth 2 -type d -name runs | sort)
    [ -n "$folders" ] || return 0
    # shellcheck disable=SC2086  # one word per folder; the step names hold no spaces
    (cd "$OUT" && tar -czf runs.tgz.part $folders && mv runs.tgz.part runs.tgz) \
        || echo "== could not archive the runs' logs into $OUT/runs.tgz"
}

# bench NAME ARGS...: one bench run into OUT/NAME, each MMRec run stopped after RUN_S or LIMIT - 60 s.
bench() {
    local name=$1
    shift
    local run_s=$((LIMIT - 60 < RUN_S ? LIMIT - 60 : RUN_S))
    $cli bench --mmrec "$MMREC" --out "$OUT/$name" --max-rss-gb 100 "$@" \
        --max-minutes "$("$PYTHON" -c "print($run_s / 60)")"
}
elec_data() {
    $cli install "$MMREC" && $cli make-data --mmrec "$MMREC" synthetic_elec \
        && $cli user-graph --mmrec "$MMREC" -d synthetic_elec
}
cuda_tests() {
    "$PYTHON" -m pytest -q -rs -p no:cacheprovider --junitxml "$OUT/pytest-cuda.xml" tests/test_mde_model.py \
        tests/test_mde_equations.py tests/test_mde_compiled.py tests/test_shared_topk.py tests/test_results_log.py \
        -k "cuda or configured_device or same_seed or peak_gpu"
}
# copy_checkout NAME: install the plugin, then copy the checkout, its data left out (bench makes it), to $MMREC-NAME
copy_checkout() {
    local copy="$MMREC-$1"
    $cli install "$MMREC" && rm -rf "$copy" && mkdir -p "$copy" \
        && tar -C "$MMREC" --exclude=./data -cf - . | tar -C "$copy" -xf -
}
# baby_bench NAME EPOCHS: MDE and FREEDOM at the Baby shape, 20 steps of each profiled, into OUT/NAME
baby_bench() {
    bench "$1" --preset baby --models MDE FREEDOM --epochs "$2" --no-eval-share --profile-steps 20 \
        && grep -h "^\`RATIO" "$OUT/$1"/*.md
}
# baby_ratio: MDE and FREEDOM as shipped, then in a copy whose MDE.yaml sets compile_losses: True
baby_ratio() {
    local yaml="$MMREC-compiled/src/configs/model/MDE.yaml"
    copy_checkout compiled && sed -i 's/^compile_losses: False/compile_losses: True/' "$yaml" \
        && grep -q "^compile_losses: True" "$yaml" && baby_bench baby-ratio 3 \
        && MMREC=$MMREC-compiled baby_bench baby-ratio-compiled 3
}
# baby_loader: the same in a copy with patch 0024 (the batch negative sampler) reversed
baby_loader() {
    copy_checkout without-0024 \
        && patch -s -R -p1 -d "$MMREC-without-0024" < patches/0024-dataloader-vectorised-negative-sampling.patch \
        && MMREC=$MMREC-without-0024 baby_bench baby-loader 1
}
export -f bench elec_data cuda_tests copy_checkout baby_bench baby_ratio baby_loader
export MMREC OUT RUN_S PYTHON cli

main() {
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
    if ! "$PYTHON" -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.cuda.is_available());
sys.exit(not torch.cuda.is_available())" && [ "${GPU_ALLOW_CPU:-0}" != 1 ]; then
        echo "bench/gpu.sh: PyTorch sees no CUDA device here; stopping (GPU_ALLOW_CPU=1 runs the steps anyway)"
        return 3
    fi
    echo "steps: $STEPS; budget ${BUDGET_S}s, MMRec runs at most ${RUN_S}s; ended earlier: $(cat "$DONE" 2>/dev/null | tr '\n' ' ')"
    for name in $STEPS; do
        case $name in
            tests)        step tests 150 40 bash -c cuda_tests ;;
            elec-data)    step elec-data 300 120 bash -c elec_data ;;
            elec-freedom) step elec-freedom $((RUN_S + 60)) 180 bash -c 'bench elec-freedom --preset elec --epochs 1 --models FREEDOM --no-eval-share' ;;
            elec-dragon)  step elec-dragon $((RUN_S + 60)) 180 bash -c 'bench elec-dragon --preset elec --epochs 1 --models DRAGON --no-eval-share' ;;
            baby)         step baby 300 150 bash -c 'bench baby --preset baby --epochs 2 --profile-steps 20' ;;
            elec-mde)     step elec-mde $((RUN_S + 90)) 180 bash -c 'bench elec-mde --preset elec --epochs 1 --models MDE --no-eval-share' ;;
            baby-ratio)   step baby-ratio 360 240 bash -c baby_ratio ;;
            baby-loader)  step baby-loader 200 120 bash -c baby_loader ;;
        esac
    done
    echo "== done after ${SECONDS}s; steps ended so far: $(cat "$DONE" 2>/dev/null | tr '\n' ' ')"
}
main 2>&1 | tee -a "$OUT/gpu.log"
