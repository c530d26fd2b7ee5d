#!/usr/bin/env bash
# The main job: pretrain a small MAE on the embedded handwritten digits (a few minutes on 2 CPU
# cores), save the model and a reconstruction picture, and report on held-out data how much the
# pretraining helped against the same encoder from random initialisation.
# Extra arguments go to the recipe, e.g.  bash scripts/main.sh train.epochs=10
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/omnimask train image_mae "$@"
