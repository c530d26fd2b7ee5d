"""omnimask: one masked-modeling core for image, video, audio, text and point clouds.

Importing the package registers every modality, masking strategy, decoder and objective, and
makes ``transformers.AutoModel`` / ``AutoConfig`` understand omnimask checkpoints.
"""

__version__ = "0.1.0"

from .configuration import OmniMaskConfig  # noqa: E402
from .models import OmniMaskForPreTraining, OmniMaskModel, OmniMaskProcessor  # noqa: E402
from .models.auto import register_auto_classes  # noqa: E402

register_auto_classes()

__all__ = ["__version__", "OmniMaskConfig", "OmniMaskForPreTraining", "OmniMaskModel", "OmniMaskProcessor"]
