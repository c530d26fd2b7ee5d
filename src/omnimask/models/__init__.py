"""Models: the pretraining model, the encoder-only model, outputs, HF-style loading."""

from .encoder_model import OmniMaskModel
from .outputs import EncoderOutput, OmniMaskModelOutput, OmniMaskPreTrainingOutput
from .pretraining import OmniMaskForPreTraining
from .processor import OmniMaskProcessor

__all__ = [
    "OmniMaskModel",
    "OmniMaskForPreTraining",
    "OmniMaskProcessor",
    "EncoderOutput",
    "OmniMaskModelOutput",
    "OmniMaskPreTrainingOutput",
]
