"""``python -m omnimask`` = the ``omnimask`` command (so ``torchrun -m omnimask train ...`` works)."""

import sys

from .cli import main

sys.exit(main())
