"""omnimask: one masked-modeling core for image, video, audio, text and point clouds.

Importing the package makes ``transformers.AutoModel`` / ``AutoConfig`` understand omnimask
checkpoints. Modalities, masking strategies, decoders, objectives and converters are found by their
registries on first use (their packages' modules and installed ``omnimask.*`` entry points).
"""

from .model_config import OmniMaskConfig
from .models import OmniMaskForPreTraining, OmniMaskModel, OmniMaskProcessor
from .models.auto import register_auto_classes
from .version import __version__

register_auto_classes()

__all__ = ["__version__", "OmniMaskConfig", "OmniMaskForPreTraining", "OmniMaskModel", "OmniMaskProcessor"]
