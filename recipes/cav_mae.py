#!/usr/bin/env python
"""Contrastive audio-visual masked autoencoding: CAV-MAE (Gong et al., ICLR 2023) on the shared core.

    python recipes/cav_mae.py                                   # tiny model on the embedded digits with sound
    python recipes/cav_mae.py --config recipes/configs/av/cav_mae_vit_b_as2m.yaml \
        data.av.list_file=/data/audioset/train.json data.av.label_csv=/data/audioset/class_labels_indices.csv
    python recipes/cav_mae.py train.epochs=5                    # any key=value override

Everything the recipe does lives in :mod:`omnimask.runners.pretrain`; this file only picks the default config.
"""

import sys
from pathlib import Path

from omnimask.runners.pretrain import main

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "av" / "cav_mae_tiny_digits.yaml"

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], default_config=DEFAULT_CONFIG, prog="cav_mae"))
