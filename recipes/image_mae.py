#!/usr/bin/env python
"""Image MAE pretraining (He et al., "Masked Autoencoders Are Scalable Vision Learners", 2021).

    python recipes/image_mae.py                                   # tiny model on the embedded digits
    python recipes/image_mae.py --config recipes/configs/image/mae_vit_b16_in1k.yaml \
        data.image.root=/data/imagenet/train data.image.val_root=/data/imagenet/val
    python recipes/image_mae.py train.epochs=5 optim.base_lr=1e-3  # any key=value override
    python recipes/image_mae.py --resume                          # continue the last run exactly

Everything the recipe does lives in :mod:`omnimask.runners.pretrain`; this file only picks the default config.
"""

import sys
from pathlib import Path

from omnimask.runners.pretrain import main

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "image" / "mae_vit_tiny_digits.yaml"

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], default_config=DEFAULT_CONFIG, prog="image_mae"))
