"""Registration with transformers' Auto classes (runs on ``import omnimask``)."""

from __future__ import annotations

__all__ = ["register_auto_classes"]

_done = False


def register_auto_classes() -> None:
    """``AutoConfig`` -> OmniMaskConfig, ``AutoModel`` -> OmniMaskModel (encoder only),
    ``AutoModelForPreTraining`` -> OmniMaskForPreTraining."""
    global _done
    if _done:
        return
    from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

    from ..model_config import OmniMaskConfig
    from .encoder_model import OmniMaskModel
    from .pretraining import OmniMaskForPreTraining

    AutoConfig.register(OmniMaskConfig.model_type, OmniMaskConfig, exist_ok=True)
    AutoModel.register(OmniMaskConfig, OmniMaskModel, exist_ok=True)
    AutoModelForPreTraining.register(OmniMaskConfig, OmniMaskForPreTraining, exist_ok=True)
    _done = True
