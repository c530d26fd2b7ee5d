#!/usr/bin/env bash
# The main job: one small encoder pretrained on the embedded handwritten digits in five modalities
# at once (images, moving-digit videos, digit melodies, captioned images, 3-D stroke clouds), on
# 2 CPU cores in about six minutes of training plus five of evaluation. It saves one model
# that serves any subset of the modalities, a reconstruction picture per modality, and reports per
# source on held-out data how much the mixed pretraining helped against the same encoder at random
# init. Extra arguments go to the recipe, e.g.  bash scripts/main.sh train.epochs=2
# (The single-modality recipes run the same way: .venv/bin/omnimask train image_mae, ...)
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/omnimask train omni "$@"
