#!/usr/bin/env python
"""Vision-language masked autoencoding: M3AE (Geng, Liu et al., 2022), image + caption in one encoder.

    python recipes/m3ae.py                                       # tiny model on the embedded captioned digits
    python recipes/m3ae.py --config recipes/configs/vl/m3ae_vit_b_cc12m.yaml \
        data.pairs.format=tar data.pairs.path='/data/cc12m/{00000..01242}.tar'
    python recipes/m3ae.py train.epochs=5                        # any key=value override

Everything the recipe does lives in :mod:`omnimask.runners.pretrain`; this file only picks the default config.
"""

import sys
from pathlib import Path

from omnimask.runners.pretrain import main

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "vl" / "m3ae_tiny_digits.yaml"

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], default_config=DEFAULT_CONFIG, prog="m3ae"))
