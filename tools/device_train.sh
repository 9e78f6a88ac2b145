#!/usr/bin/env bash
# Runs ON a lent GPU machine (the device tool), from the repository root, with .device carried
# (tools/device_bundle.py made it). Continues the shipped model for MINUTES of training, then
# writes $OUT/candidate.pt (fp16, ~10 MB: small enough to come back), train.log and the sample
# sheets. The training checkpoint (~37 MB with Adam) is too big to come back, so the next call
# continues from candidate.pt (copied to .device/resume.pt) with a fresh Adam and a short warmup.
#
#   bash tools/device_train.sh MINUTES [more tools/train_shipped.py options]
#
# DEVELOPERS.md ("Training on a lent GPU") has the loop around it.
set -euo pipefail
minutes=${1:?usage: device_train.sh MINUTES [train_shipped options]}
shift
: "${OUT:?OUT must name the folder whose files come back}"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
init=normstyle_core/assets/default.pt
[ -f .device/resume.pt ] && init=.device/resume.pt
[ -d .device/data/train/content ] || { echo "no .device/data: run tools/device_bundle.py and carry .device" >&2; exit 2; }
before=$("$py" -c "import sys, torch; print(int(torch.load(sys.argv[1], weights_only=True).get('step') or 0))" "$init")
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
# A new seed per call (from the step count) gives each call new crops and made-up styles.
"$py" tools/train_shipped.py --data .device/data --out "$OUT/run" --init-from "$init" \
    --warmup-steps 200 --lr 3e-4 --seed $((before % 100000)) --minutes "$minutes" \
    --steps 10000000 --batch-size 16 --styles-per-step 16 --workers 8 "$@" 2>&1 | tee "$OUT/train.log"
"$py" tools/export_shipped.py --run "$OUT/run" --data .device/data --steps-before "$before" --out "$OUT/candidate.pt"
mv "$OUT"/run/samples_*.png "$OUT"/ 2>/dev/null || true
rm -rf "$OUT/run"
ls -la "$OUT"
