#!/usr/bin/env bash
# Training-step benchmark on one GPU machine, all parts in one script, results under $OUT.
#
#   OUT=/some/dir bash benchmarks/gpu_run.sh              # on the GPU machine, repo root as cwd
#   OUT=/tmp/smoke bash benchmarks/gpu_run.sh --cpu-smoke  # same parts at tiny sizes on CPU (< 1 min idle)
#
# Parts (each under `timeout`; a part that fails or times out leaves its partial TSV and the log, and the
# script goes on):
#   A  train_step.py tiny + reduced networks at paper window size (m 13,000, r 5,000, 165 x 256 tracks):
#      baseline (per window, float32) vs bf16 vs shared forward (12-window group) vs shared + bf16
#   B  the same for the full network (52M parameters)
#   C  one likelihood step at paper size: exact vs iterative (default options, and precond_rank 400)
#   D  torch.compile row for the reduced network (only when time is left)
#   E  2-process data-parallel scaling: needs 2 GPUs (and a torchrun benchmark mode, not written yet);
#      reported as skipped
# Expected on an H100 (estimated, not measured: the full network is about 16 GFLOP per variant for forward +
# backward, 345 ms per variant on one CPU thread; recomputation adds a forward; 60,667 distinct rows per
# 12-window group): A < 1 min, B 1-2 min (3 min limit covers a GPU 3x slower than estimated), C < 30 s,
# D 1-2 min (skipped when less than 2 minutes are left); the limits add up to at most 7 minutes.
set -u
MODE=${1:-gpu}
: "${OUT:?set OUT to the results directory}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/workflow/scripts${PYTHONPATH:+:$PYTHONPATH}"
exec > >(tee -a "$OUT/log.txt") 2>&1
set -x
date -u
nvidia-smi || true
python -c "import torch, sys; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available(), 'gpus', torch.cuda.device_count(), \
[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])"
python -c "import deepwas; print(deepwas.__file__)"
python -c "import yaml, jsonschema" || echo "PyYAML/jsonschema missing: part C may skip the iterative solver rows"

if [ "$MODE" = "--cpu-smoke" ]; then
    DEV="--device cpu --threads 1"
    A="--models tiny reduced -m 24 -r 12 --group 3 --baseline-windows 1 --chunk 16"
    B="--models full -m 4 -r 2 --group 2 --baseline-windows 1 --chunk 3"
    C="--models -m 600 -r 300 --likelihood"
    D=""
    LIMIT_A=120; LIMIT_B=120; LIMIT_C=60; LIMIT_D=0
else
    DEV=""
    A="--models tiny reduced --baseline-windows 2"
    B="--models full --baseline-windows 2"
    C="--models --likelihood"
    D="--models reduced --configs shared_bf16 shared_bf16_compile"
    LIMIT_A=100; LIMIT_B=200; LIMIT_C=45; LIMIT_D=110
fi

timeout --kill-after=10 "$LIMIT_A" python benchmarks/train_step.py $DEV $A --out "$OUT/train_step_small.tsv" \
    || echo "part A exited with $?"
timeout --kill-after=10 "$LIMIT_B" python benchmarks/train_step.py $DEV $B --out "$OUT/train_step_full.tsv" \
    || echo "part B exited with $?"
timeout --kill-after=10 "$LIMIT_C" python benchmarks/train_step.py $DEV $C --out "$OUT/likelihood_step.tsv" \
    || echo "part C exited with $?"

# D only when enough of the 7-minute budget is left (compilation of the network takes minutes)
if [ -n "$D" ] && [ "$SECONDS" -lt $((420 - LIMIT_D - 10)) ]; then
    timeout --kill-after=10 "$LIMIT_D" python benchmarks/train_step.py $DEV $D --out "$OUT/train_step_compile.tsv" \
        || echo "part D exited with $?"
else
    echo "part D (torch.compile) skipped: ${SECONDS}s elapsed or cpu smoke mode"
fi

NGPU=$(python -c "import torch; print(torch.cuda.device_count())")
echo "part E (2-process data-parallel scaling) skipped: $NGPU GPU(s) on this machine; the scaling benchmark needs 2 GPUs and a torchrun mode of train_step.py (not written yet)" \
    | tee "$OUT/ddp.txt"
echo "total ${SECONDS}s"
date -u
