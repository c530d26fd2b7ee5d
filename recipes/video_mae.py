#!/usr/bin/env python
"""Video MAE pretraining: VideoMAE (Tong et al., 2022) and VideoMAE V2's dual masking (Wang et al., 2023).

    python recipes/video_mae.py                                   # tiny model on the embedded moving digits
    python recipes/video_mae.py --config recipes/configs/video/videomae_vit_b_k400.yaml \
        data.video.list_file=/data/k400/train.csv                 # your own `<path> <label>` list
    python recipes/video_mae.py --config recipes/configs/video/videomae_v2_vit_b_dual.yaml \
        data.video.list_file=/data/k400/train.csv
    python recipes/video_mae.py train.epochs=5 optim.base_lr=1e-3  # any key=value override
    python recipes/video_mae.py --resume                          # continue the last run exactly

Everything the recipe does lives in :mod:`omnimask.runners.pretrain`; this file only picks the default config.
"""

import sys
from pathlib import Path

from omnimask.runners.pretrain import main

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "video" / "videomae_tiny_digits.yaml"

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], default_config=DEFAULT_CONFIG, prog="video_mae"))
