#!/usr/bin/env python
"""One model, five modalities, one run: images, videos, audio, image-caption pairs and point clouds.

    python recipes/omni.py                                       # the embedded digits in every modality
    python recipes/omni.py --config recipes/configs/omni/omni_template.yaml \
        data.sources.imagenet.image.root=/data/imagenet/train ...
    python recipes/omni.py data.mixing.mode=per_sample           # mix sources within each batch

Each ``data.sources`` entry is one dataset with its own modality set, weight and batch size; the
run draws one source per optimizer step (``per_step``) or per sample (``per_sample``), saves one
checkpoint that serves any subset of the modalities, and evaluates every source held-out against
the same encoder at random init. Everything lives in :mod:`omnimask.runners.pretrain`.
"""

import sys
from pathlib import Path

from omnimask.runners.pretrain import main

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "omni" / "omni_tiny.yaml"

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], default_config=DEFAULT_CONFIG, prog="omni"))
