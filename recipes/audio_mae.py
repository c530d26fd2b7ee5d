#!/usr/bin/env python
"""Audio MAE pretraining: AudioMAE (Huang et al., 2022).

    python recipes/audio_mae.py                                  # tiny model on the embedded digit melodies
    python recipes/audio_mae.py --config recipes/configs/audio/audiomae_vit_b_as2m.yaml \
        data.audio.list_file=/data/audioset/train_all.json data.audio.label_csv=/data/audioset/class_labels_indices.csv
    python recipes/audio_mae.py train.epochs=5 optim.base_lr=1e-3  # any key=value override
    python recipes/audio_mae.py --resume                          # continue the last run exactly

Everything the recipe does lives in :mod:`omnimask.runners.pretrain`; this file only picks the default config.
"""

import sys
from pathlib import Path

from omnimask.runners.pretrain import main

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "audio" / "audiomae_tiny_digits.yaml"

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], default_config=DEFAULT_CONFIG, prog="audio_mae"))
