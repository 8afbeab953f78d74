#!/usr/bin/env bash
# Regenerates reports/cost/: the cost model's time estimate (docs/cost-model.md) on the reports
# someone opens: full-size PI0 and YOLOv8x at 640x640 as verdict runs (--values none, weights on
# meta) on n150 and p150, and a model outside the zoo that leaves nodes on the host, run with
# values so that its host nodes are timed on this CPU. Each run writes report.md (checked in) and
# run.json (kept out of git for size, reports/.gitignore). Full-size runs take minutes each.
set -euo pipefail
cd "$(dirname "$0")/.."
out=reports/cost
run() {
    local name=$1
    shift
    local start=$SECONDS
    .venv/bin/fxport run "$@" --device mock --out "$out/$name" -q >/dev/null
    echo "$name: $((SECONDS - start)) s"
}
# As `fxport run` lowers them by default, and as deployed TT-NN models run (the settings of the
# published figures: block-float weights and activations, LoFi, activations in L1 where they fit).
deployed=(--memory-config auto --weights bfloat8_b --activations bfloat8_b --math-fidelity lofi)
for arch in n150 p150; do
    run "pi0-$arch" pi0 --values none --arch "$arch"
    run "yolov8x@640x640-$arch" yolov8x --values none --arch "$arch"
    run "pi0-deployed-$arch" pi0 --values none --arch "$arch" "${deployed[@]}"
    run "yolov8x@640x640-deployed-$arch" yolov8x --values none --arch "$arch" "${deployed[@]}"
done
# Held out: torchvision's R(2+1)D-18 video classifier at its 16x112x112 clip, random weights.
# TT-NN refuses its 3-D convolutions' program config, so they fall back to the host at run time.
run "r2plus1d_18-n150" torchvision.models.video:r2plus1d_18 --model-arg weights=None \
    --input-shape 1,3,16,112,112 --arch n150
