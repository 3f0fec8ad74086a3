#!/bin/bash
# Runs XPs of sepclean grids on a lent GPU machine for a fixed time and brings back what they made.
#
#   bash scripts/device/grid.sh SECONDS GRID:JOBS[:PATTERN,...] [GRID:JOBS[:PATTERN,...] ...]
#
# Made for the workplace's `device` tool: the machine is bare and cannot download, so the packages
# it lacks come as wheels in .whl/ (carried; sepclean's own wheel among them, for its entry points),
# and what comes back is what the command leaves in $OUT. The grids run side by side, each as
# `sepclean grid GRID PATTERN... --jobs JOBS` in a dora folder of its own machine (/tmp/runs); their
# XPs use the GPU. A grid whose XPs fail in its first minutes there runs again with the GPU hidden, on
# the CPU cores. After SECONDS every grid is stopped (an XP cut off is lost: the machine goes back),
# and $OUT/xps.tar.gz holds every XP folder's history.json, argv, hydra config and logs, the demucs
# XPs' histories and the artifacts' specs; copy the finished XP folders into a dora folder here and
# `sepclean grid GRID --table` counts them. Logs: $OUT/<grid>.log, $OUT/device.log; the GPU's use and the
# cores' load every 10 s: $OUT/gpu.csv, $OUT/load.log.
set -u
seconds=${1:?usage: grid.sh SECONDS GRID:JOBS[:PATTERN,...] ...}
shift
[ $# -gt 0 ] || { echo "grid.sh: name at least one GRID:JOBS" >&2; exit 2; }
out=${OUT:?grid.sh writes its results to \$OUT}
start=$(date +%s)
log() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$out/device.log"; }

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
  || { log "installing the wheels in .whl failed"; exit 3; }
export PYTHONPATH=/tmp/site SEPCLEAN_DORA_DIR=/tmp/runs PYTHONUNBUFFERED=1
# stempeg (musdb's, imported by demucs) refuses to import without ffmpeg and ffprobe on the PATH, and
# the machine's image has neither. Nothing here reads or writes MP4 stems: where they are missing,
# each is a command that fails saying so, should anything call it.
if ! command -v ffmpeg > /dev/null || ! command -v ffprobe > /dev/null; then
  mkdir -p /tmp/no-ffmpeg
  for tool in ffmpeg ffprobe; do
    printf '#!/bin/sh\necho "%s is not installed on this machine" >&2\nexit 1\n' "$tool" > /tmp/no-ffmpeg/$tool
    chmod +x /tmp/no-ffmpeg/$tool
  done
  export PATH=$PATH:/tmp/no-ffmpeg
fi
cd /tmp  # sepclean from its wheel, not the checkout (the same code: the wheel is built from it)
python3 -c "import sepclean.train, sepclean_plugins.demucs, sepclean_plugins.openunmix, museval, torch; \
print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$out/device.log"
[ "${PIPESTATUS[0]}" = 0 ] || { log "the stack does not import"; exit 3; }
nvidia-smi -L >> "$out/device.log" 2>&1
# XPs side by side are processes of their own, and without MPS one GPU runs their kernels in turns
# (time slices), each small model leaving most of it idle. With MPS their kernels run together. Where
# the image lacks it or a CUDA call fails under it, the XPs take turns.
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
mkdir -p /tmp/mps /tmp/mps-log
if command -v nvidia-cuda-mps-control > /dev/null && nvidia-cuda-mps-control -d \
   && timeout 60 python3 -c "import torch; torch.ones(1, device='cuda').sum().item()"; then
  log "MPS on"
else
  command -v nvidia-cuda-mps-control > /dev/null && echo quit | nvidia-cuda-mps-control 2>/dev/null
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
  log "MPS off (not in the image, or CUDA failed under it): the XPs take turns on the GPU"
fi
log "$(nproc) cores"
# What limits the XPs: the GPU's use every 10 s, the cores' load beside it.
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 10 > "$out/gpu.csv" 2>&1 &
watchers=$!
(while sleep 10; do echo "$(( $(date +%s) - start )) s $(cut -d' ' -f1-3 /proc/loadavg)"; done) > "$out/load.log" 2>&1 &
watchers="$watchers $!"

declare -A group args retried
launch() {  # launch GRID [hide]: the grid in a process group of its own
  local grid=$1
  if [ "${2:-}" = hide ]; then
    CUDA_VISIBLE_DEVICES= setsid python3 -m sepclean grid ${args[$grid]} >> "$out/$grid.log" 2>&1 &
  else
    setsid python3 -m sepclean grid ${args[$grid]} >> "$out/$grid.log" 2>&1 &
  fi
  group[$grid]=$!
  log "started $grid (${2:-gpu}): sepclean grid ${args[$grid]}"
}
for spec in "$@"; do
  IFS=: read -r grid jobs patterns <<< "$spec"
  args[$grid]="$grid ${patterns//,/ } --jobs $jobs"
  retried[$grid]=no
  launch "$grid"
done

while [ $(( $(date +%s) - start )) -lt "$seconds" ]; do
  sleep 10
  for grid in "${!group[@]}"; do
    if [ "${retried[$grid]}" = no ] && [ $(( $(date +%s) - start )) -lt 300 ] && grep -q "FAILED" "$out/$grid.log"; then
      log "$grid: an XP failed on the GPU; running the grid again on the CPU cores"
      kill -TERM -- "-${group[$grid]}" 2>/dev/null; sleep 5; kill -KILL -- "-${group[$grid]}" 2>/dev/null
      retried[$grid]=yes
      launch "$grid" hide
    fi
  done
  running=0
  for grid in "${!group[@]}"; do kill -0 "${group[$grid]}" 2>/dev/null && running=1; done
  [ $running = 1 ] || break
done
log "stopping"
for grid in "${!group[@]}"; do kill -TERM -- "-${group[$grid]}" 2>/dev/null; done
sleep 3
for grid in "${!group[@]}"; do kill -KILL -- "-${group[$grid]}" 2>/dev/null; done
kill $watchers 2>/dev/null
cd /tmp/runs && find xps demucs/xps artifacts grid_results \( -name history.json -o -name .argv.json -o -name run.log \
  -o -name train.log -o -name config.yaml -o -name overrides.yaml -o -name spec.json -o -name done.json \
  -o -name summary.md \) -print0 2>/dev/null | tar czf "$out/xps.tar.gz" --null -T -
log "finished XPs: $(ls xps/*/history.json 2>/dev/null | wc -l); $(du -h "$out/xps.tar.gz" | cut -f1) back"
