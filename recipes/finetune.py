#!/usr/bin/env python
"""Supervised fine-tuning of a pretrained omnimask encoder (MAE / AudioMAE / Point-MAE style).

    python recipes/audio_mae.py                                        # pretrain (writes runs/audio_mae_digits/final)
    python recipes/finetune.py --config recipes/configs/audio/audiomae_digits_finetune.yaml
    python recipes/finetune.py --config recipes/configs/audio/audiomae_esc50_finetune.yaml \
        init=/ckpt/audiomae_as2m data.audio.list_file=/data/esc50/fold1_train.json \
        data.audio.val_list_file=/data/esc50/fold1_eval.json data.audio.label_csv=/data/esc50/labels.csv

Everything lives in :mod:`omnimask.runners.finetune`; this file only picks the default config.
"""

import sys
from pathlib import Path

from omnimask.runners.finetune import main

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "audio" / "audiomae_digits_finetune.yaml"

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], default_config=DEFAULT_CONFIG, prog="finetune"))
