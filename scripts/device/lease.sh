#!/bin/bash
# What a 15-minute GPU lease is for, as two prepared calls of the device tool (carry [".whl"], made by
# scripts/device/wheels.sh). The first call starts the machine (1–2 minutes of the lease), the second
# must follow within the 30 s the machine stays warm:
#
#   bash scripts/device/lease.sh grid      # timeout_s 600: hdemucs_gpu's 9 XPs, then FAD on the GPU
#   bash scripts/device/lease.sh benches   # timeout_s 170: linear attribution's cost on the GPU
#
# Everything comes back under $OUT: the grid's xps.tar.gz and logs (scripts/device/grid.sh), fad_gpu.txt,
# linear_cost.txt. Each step has a hard time limit, so a slow one is cut, not the call.
set -u
out=${OUT:?lease.sh writes its results to \$OUT}
export PYTHONUNBUFFERED=1
case ${1:?usage: lease.sh grid|benches} in
  grid)
    # 9 XPs side by side under MPS: about 5 minutes of training and 2 of evaluation (second lease).
    bash scripts/device/grid.sh 540 sepclean.hdemucs_gpu:9
    export PYTHONPATH=/tmp/site
    left=$((590 - SECONDS))
    [ $left -gt 15 ] && timeout $left python3 benchmarks/bench_fad_fadtk.py --wheel .whl/fadtk/fadtk-1.1.0-fad.zip \
      --device cuda --songs 200 --fadtk-songs 6 --frames 3000 1000 > "$out/fad_gpu.txt" 2>&1
    ;;
  benches)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 3
    export PYTHONPATH=/tmp/site
    # The fit needs two N and two M; 12 s songs as the README's CPU figure. --device cuda: the GPU's
    # per-song and per-reference cost, extrapolated to 10,000 songs x 4 targets.
    timeout 150 python3 benchmarks/bench_linear_cost.py --device cuda --songs 10 40 --references 4 16 \
      --shards 1 10 > "$out/linear_cost.txt" 2>&1
    ;;
  *) echo "lease.sh: grid or benches" >&2; exit 2 ;;
esac
echo "lease.sh $1: done in $SECONDS s"
