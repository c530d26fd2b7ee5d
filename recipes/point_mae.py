#!/usr/bin/env python
"""Point-cloud MAE pretraining: Point-MAE (Pang et al., 2022).

    python recipes/point_mae.py                                  # tiny model on the embedded shapes
    python recipes/point_mae.py --config recipes/configs/points/point_mae_shapenet.yaml \
        data.points.root=/data/ShapeNet55-34                     # Point-MAE's ShapeNet-55 pretraining
    python recipes/point_mae.py train.epochs=5 optim.lr=1e-3     # any key=value override
    python recipes/point_mae.py --resume                         # continue the last run exactly

Everything the recipe does lives in :mod:`omnimask.runners.pretrain`; this file only picks the default config.
"""

import sys
from pathlib import Path

from omnimask.runners.pretrain import main

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "points" / "point_mae_tiny_shapes.yaml"

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], default_config=DEFAULT_CONFIG, prog="point_mae"))
