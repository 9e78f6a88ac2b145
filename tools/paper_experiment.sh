#!/usr/bin/env bash
# The paper's fixed-style-set experiments (issue #3): train the paper's networks on 4 or 16 named
# styles in a fixed cycle, then measure style retrieval on test photos never trained on.
#
#   tools/paper_experiment.sh 4  [DATA=../shared/data] [OUT=../runs/paper4b]  [STEPS=2000]
#   tools/paper_experiment.sh 16 [DATA=../shared/data] [OUT=../runs/paper16]  [STEPS=6000]
#
# Resumable: run it again with the same OUT and it continues from the newest checkpoint.
# CPU settings (128 px, widths 16/32/64, 4 styles per step so every batch contrasts styles);
# on a GPU pass e.g. EXTRA="--image-size 256 --widths 32,64,128 --compile".
set -euo pipefail
n=${1:?usage: $0 4|16 [DATA] [OUT] [STEPS]}
data=${2:-../shared/data}
case $n in
  4) names="candy udnie starry-night the-great-wave"; out=${3:-../runs/paper4b}; steps=${4:-2000} ;;
  16) names="candy udnie starry-night the-great-wave mosaic rain-princess the-scream composition-vii
             la-muse feathers frida-kahlo mondrian shipwreck woman-with-hat escher-sphere
             picasso-self-portrait"; out=${3:-../runs/paper16}; steps=${4:-6000} ;;
  *) echo "error: the experiment is 4 or 16 styles, got $n" >&2; exit 2 ;;
esac
styles=()
for s in $names; do styles+=(--style "$data/styles/named/$s.jpg"); done
normstyle train "$data/train/content" "${styles[@]}" --out "$out" --steps "$steps" \
  --image-size 128 --widths 16,32,64 --styles-per-step 4 --style-mode cycle \
  --checkpoint-every 250 --sample-every 500 ${EXTRA:-}
ckpt=$(ls "$out"/ckpt_*.pt | sort | tail -1)
normstyle eval --model "$ckpt" --content "$data/content/test" "${styles[@]}" --size 256 --out "$out/eval"
