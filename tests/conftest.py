import os
import sys
from pathlib import Path

import pytest
import torch

# The test-only third-party modality "signal" (tests/plugins/omnimask_signal): putting the folder on
# sys.path is what installing its distribution would do; the modality registry then finds it
# through its ``omnimask.modalities`` entry point. Nothing imports it by name.
PLUGINS = Path(__file__).parent / "plugins"
sys.path.insert(0, str(PLUGINS))

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def embedded_data_dir(tmp_path_factory):
    """The embedded dataset's image, video, points, shapes and captions parts, built once per test
    session in a temporary directory (points and shapes together take about 1.5 s)."""
    from omnimask.data import ensure_embedded_dataset

    parts = ("image", "video", "points", "shapes", "captions")
    return ensure_embedded_dataset(tmp_path_factory.mktemp("embedded"), parts=parts, progress=False)


@pytest.fixture(scope="session")
def embedded_audio_dir(tmp_path_factory):
    """The embedded dataset's audio part (57 MB, about 2.5 s), built once per test session when a
    test asks for it."""
    from omnimask.data import ensure_embedded_dataset

    return ensure_embedded_dataset(tmp_path_factory.mktemp("embedded_audio"), parts=("audio",), progress=False)


def tiny_config_dict(**image_overrides):
    """A small single-image model: 32x32 RGB, patch 8 (16 tokens), encoder 32 wide."""
    image = {
        "tokenizer": {"image_size": 32, "patch_size": 8, "in_chans": 3},
        "decoder": {"dim": 16, "depth": 1, "num_heads": 2},
    }
    image.update(image_overrides)
    return {"encoder": {"dim": 32, "depth": 2, "num_heads": 2}, "modalities": {"image": image}}
