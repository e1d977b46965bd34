#!/usr/bin/env bash
# Fine-tune the generator (or train a new one) on a rented GPU machine inside a fixed time budget, from a
# data pack.
#
#   tools/train_on_gpu.sh PACK INIT.safetensors OUT BUDGET_S [DEVICE]
#   tools/train_on_gpu.sh PACK none OUT BUDGET_S [DEVICE]    # a new generator with encoder ENCODER, from scratch
#
# PACK is written here by `python -m data_prep.pack pack DATASET PACK --splits train,val` (about 3.6 KB
# per photo, so the whole labelled LFW travels in ~40 MB). On the GPU machine this script
#   1. unpacks it into a dataset folder (labels re-rendered from the Face Mesh vertices),
#   2. times a short training run on it (images/s, also a smoke test before the long steps),
#   3. adds VIEWS profiled views per photo (`facevision prepare profile --views VIEWS --seed VIEW_SEED --include-originals`),
#   4. fine-tunes INIT (or trains the new generator) for as many steps as the rest of BUDGET_S allows, with the learning rate decaying
#      linearly to 0 over the run, validating and saving every "epoch" of STEPS_PER_EPOCH steps (or one pass),
#      in float32 (on an H200 bf16 autocast made the small network's forward pass 2.8x slower),
# and copies best/last weights, log.csv, curves.png, the last validation grid and its own log to OUT.
# Settings (environment): BATCH (64), LR (1.5e-4), STEPS_PER_EPOCH (1200), BENCH_STEPS (300), WORKERS (cores - 2),
# VIEWS (2) and VIEW_SEED (2) of the profiled views, WORK (/tmp/fv), ENCODER (with INIT none;
# tu-mobilenetv3_large_100).
set -euo pipefail
PACK=$1; INIT=$2; OUT=$3; BUDGET=$4; DEVICE=${5:-cuda}
BATCH=${BATCH:-64}; LR=${LR:-1.5e-4}; STEPS_PER_EPOCH=${STEPS_PER_EPOCH:-1200}; BENCH_STEPS=${BENCH_STEPS:-300}
VIEWS=${VIEWS:-2}; VIEW_SEED=${VIEW_SEED:-2}
CORES=$(nproc); WORKERS=${WORKERS:-$(( CORES > 3 ? CORES - 2 : 1 ))}; WORK=${WORK:-/tmp/fv}
if [ "$INIT" = none ]; then START=(--encoder "${ENCODER:-tu-mobilenetv3_large_100}"); else START=(--init "$INIT"); fi
T0=$(date +%s)
mkdir -p "$OUT" "$WORK"
LOG="$OUT/driver.log"
say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$LOG"; }
finish() {
  for f in best.safetensors last.safetensors log.csv curves.png; do
    [ -f "$WORK/run/$f" ] && cp "$WORK/run/$f" "$OUT/$f"
  done
  last_vis=$(ls "$WORK/run/vis/"*.png 2>/dev/null | tail -1 || true)
  [ -n "$last_vis" ] && cp "$last_vis" "$OUT/vis_last.png"
  say "done"
}
trap finish EXIT

say "device $DEVICE, $CORES cores, $WORKERS loader workers, batch $BATCH, lr $LR, budget $BUDGET s, start ${START[*]}"
python3 -m data_prep.pack unpack "$PACK" "$WORK/data" --workers "$CORES" | tee -a "$LOG"
say "unpacked"

python3 -m facevision train --data "$WORK/data" --out "$WORK/bench" "${START[@]}" --epochs 1 \
  --max-steps-per-epoch "$BENCH_STEPS" --batch-size "$BATCH" --workers "$WORKERS" --device "$DEVICE" --no-amp 2>&1 \
  | grep -v '%|' | tee -a "$LOG"
IPS=$(python3 -c "import csv,sys; print(list(csv.DictReader(open(sys.argv[1])))[-1]['images_per_s'])" "$WORK/bench/log.csv")
say "timing run: $IPS images/s"

python3 -m facevision prepare profile "$WORK/data" -o "$WORK/data_lp" --views "$VIEWS" --seed "$VIEW_SEED" --include-originals \
  --no-progress --workers "$CORES" 2>&1 | tee -a "$LOG"
say "profiled"

# epochs that fit: each costs SPE * BATCH / IPS seconds plus ~8 s of validation and saving, where SPE is
# STEPS_PER_EPOCH or one pass over the train split, whichever is shorter
read -r EPOCHS SPE < <(python3 -c "
import json, sys; left, ips, spe, b = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
spe = min(spe, json.load(open(sys.argv[5]))['split_counts']['train'] // b)
print(max(1, int(left // (spe * b / ips + 8))), spe)" "$(( BUDGET - ($(date +%s) - T0) - 25 ))" "$IPS" "$STEPS_PER_EPOCH" \
  "$BATCH" "$WORK/data_lp/manifest.json")
say "training $EPOCHS epochs of $SPE steps"
python3 -m facevision train --data "$WORK/data_lp" --out "$WORK/run" "${START[@]}" --epochs "$EPOCHS" \
  --decay-epochs "$EPOCHS" --max-steps-per-epoch "$SPE" --batch-size "$BATCH" --lr "$LR" \
  --lr-disc "$LR" --workers "$WORKERS" --device "$DEVICE" --seed 7 --no-amp 2>&1 | grep -v '%|' | tee -a "$LOG"

# the generator's forward pass alone on DEVICE, batches of 64 crops (faces/s; no detection, mesh or files)
python3 - "$WORK/run/last.safetensors" "$DEVICE" <<'PY' 2>&1 | tee -a "$LOG" || true
import sys, time, torch
from facevision.model.checkpoint import load_generator
g = load_generator(sys.argv[1], sys.argv[2]).eval()
x = torch.rand(64, 3, 128, 128, device=sys.argv[2])
with torch.inference_mode():
    for _ in range(5):
        g(x)
    for amp in (False, True):
        with torch.autocast("cuda", torch.bfloat16, enabled=amp and x.is_cuda):
            torch.cuda.synchronize() if x.is_cuda else None
            t = time.perf_counter()
            for _ in range(50):
                g(x)
            torch.cuda.synchronize() if x.is_cuda else None
        print(f"network forward, batch 64, {'bf16' if amp else 'fp32'}: {50 * 64 / (time.perf_counter() - t):.0f} faces/s")
PY
