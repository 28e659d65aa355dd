#!/usr/bin/env bash
# Training-step benchmark on one GPU machine, all parts in one script, results under $OUT.
#
#   OUT=/some/dir bash benchmarks/gpu_run.sh              # on the GPU machine, repo root as cwd
#   OUT=/tmp/smoke bash benchmarks/gpu_run.sh --cpu-smoke  # same parts at tiny sizes on CPU (~1.5 min idle,
#                                                          # most of it part D's compilation)
#   OUT=/some/dir bash benchmarks/gpu_run.sh --compile     # train.compile only (about 5 minutes on an H200):
#       tests/test_gpu.py (the compiled Trainer on CUDA ends where the eager one ends) and the full network at
#       paper size, baseline vs shared_bf16 vs shared_bf16_static (compile_prior) in one run
#
# Parts, most informative first (each under `timeout`; a part that fails or times out leaves its partial TSV
# and the log, and the script goes on):
#   T  the CUDA tests: tests/test_gpu.py (training and the shared forward on the GPU equal the CPU's),
#      tests/test_inference.py and tests/test_features_loader.py (their CUDA-only tests run here)
#   B  train_step.py, full network (52M parameters) at paper window size (m 13,000, r 5,000, 165 x 256 tracks):
#      baseline (per window, float32) vs bf16 vs shared forward (12-window group) vs shared + bf16
#   C  one likelihood step at paper size: exact vs iterative (default options, and precond_rank 400)
#   A  the same as B for the tiny and reduced networks
#   F  inference_step.py: the transformer's batched inference per window (evaluate, export, prior h2)
#   D  the reduced network with train.compile's torch.compile (shared_bf16_static: `compile_prior`, static
#      chunks), only when time is left; its uncompiled shared_bf16 row is part A's (same run, same machine)
#   E  2-process data-parallel scaling: needs 2 GPUs; reported as skipped on a 1-GPU machine
# The limits add up to at most 8 minutes (D only when 2 1/2 minutes are left of them).
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

if [ "$MODE" = "--compile" ]; then
    timeout --kill-after=10 150 python -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py 2>&1 \
        | tee "$OUT/gpu_tests.txt" || echo "tests exited with $?"
    timeout --kill-after=10 330 python benchmarks/train_step.py --models full --baseline-windows 2 \
        --configs baseline shared_bf16 shared_bf16_static --out "$OUT/full_static.tsv" || echo "full exited with $?"
    echo "total ${SECONDS}s"
    exit 0
fi

if [ "$MODE" = "--cpu-smoke" ]; then
    DEV="--device cpu --threads 1"
    A="--models tiny reduced -m 24 -r 12 --group 3 --baseline-windows 1 --chunk 16"
    B="--models full -m 4 -r 2 --group 2 --baseline-windows 1 --chunk 3"
    C="--models -m 600 -r 300 --likelihood"
    F="--models tiny -m 300 --repeats 1"
    D="--models tiny -m 24 -r 12 --group 3 --chunk 16 --configs shared_bf16_static"
    LIMIT_T=120; LIMIT_A=120; LIMIT_B=120; LIMIT_C=60; LIMIT_F=60; LIMIT_D=200
else
    DEV=""
    A="--models tiny reduced --baseline-windows 2"
    B="--models full --baseline-windows 2"
    C="--models --likelihood"
    F="--models tiny reduced full"
    D="--models reduced --configs shared_bf16_static"
    LIMIT_T=90; LIMIT_A=80; LIMIT_B=180; LIMIT_C=45; LIMIT_F=50; LIMIT_D=150
fi

timeout --kill-after=10 "$LIMIT_T" python -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py tests/test_inference.py \
    tests/test_features_loader.py 2>&1 | tee "$OUT/gpu_tests.txt" || echo "part T exited with $?"
timeout --kill-after=10 "$LIMIT_B" python benchmarks/train_step.py $DEV $B --out "$OUT/train_step_full.tsv" \
    || echo "part B exited with $?"
timeout --kill-after=10 "$LIMIT_C" python benchmarks/train_step.py $DEV $C --out "$OUT/likelihood_step.tsv" \
    || echo "part C exited with $?"
timeout --kill-after=10 "$LIMIT_A" python benchmarks/train_step.py $DEV $A --out "$OUT/train_step_small.tsv" \
    || echo "part A exited with $?"
timeout --kill-after=10 "$LIMIT_F" python benchmarks/inference_step.py $DEV $F --out "$OUT/inference_step.tsv" \
    || echo "part F exited with $?"

# D only when enough of the 8-minute budget is left (compilation of the network takes minutes; the smoke's
# tiny network took 32 s of CPU time on the shared dev machine)
if [ -n "$D" ] && [ "$SECONDS" -lt $((480 - LIMIT_D - 10)) ]; then
    timeout --kill-after=10 "$LIMIT_D" python benchmarks/train_step.py $DEV $D --out "$OUT/train_step_compile.tsv" \
        || echo "part D exited with $?"
else
    echo "part D (torch.compile, shared_bf16_static) skipped: ${SECONDS}s elapsed"
fi

NGPU=$(python -c "import torch; print(torch.cuda.device_count())")
echo "part E (2-process data-parallel scaling) skipped: $NGPU GPU(s) on this machine; the scaling benchmark needs 2 GPUs" \
    | tee "$OUT/ddp.txt"
echo "total ${SECONDS}s"
date -u
