"""Model outputs (plain dataclasses with attribute access)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from ..masking.base import MaskSpec

__all__ = ["EncoderOutput", "OmniMaskModelOutput", "OmniMaskPreTrainingOutput"]


@dataclass
class EncoderOutput:
    """What the shared encoder produced for one forward pass.

    Attributes:
        last_hidden_state: (B, G + sum K_m, D) normed encoder output, global tokens first.
        global_tokens: (B, G, D) e.g. the ``[CLS]`` output (G = 0 without a cls token).
        parts: per modality (B, K_m, D), in the order the tokens entered the encoder.
        hidden_states: per-block outputs (before the final norm) when requested.
        entered: per modality (B, K_m, D), the tokens as they entered the shared blocks (after
            the modality's own blocks): what a pass of one modality alone starts from.
    """

    last_hidden_state: Tensor
    global_tokens: Tensor
    parts: dict[str, Tensor]
    hidden_states: list[Tensor] | None = None
    entered: dict[str, Tensor] | None = None


@dataclass
class OmniMaskModelOutput:
    """Output of :class:`~omnimask.OmniMaskModel`.

    Attributes:
        last_hidden_state: (B, G + N_total, D).
        pooler_output: (B, D) mean over all modality tokens (MAE's global pooling).
        hidden: per-modality token features (B, N_m, D) (only visible tokens when masks are given).
        cls: (B, D) the ``[CLS]`` output, or None when the encoder has no cls token.
        hidden_states: per-block outputs when ``output_hidden_states=True``.
    """

    last_hidden_state: Tensor
    pooler_output: Tensor
    hidden: dict[str, Tensor]
    cls: Tensor | None = None
    hidden_states: list[Tensor] | None = None


@dataclass
class OmniMaskPreTrainingOutput:
    """Output of :class:`~omnimask.OmniMaskForPreTraining`.

    Attributes:
        loss: weighted sum of the per-modality losses (scalar).
        losses: per-modality losses (unweighted).
        pred: per-modality predictions (B, N_m, P_m) for **all** N_m positions, reference patch layout;
            with a decoder selection (dual masking) (B, Q_m, P_m) for ``specs[m].ids_decode`` only.
        mask: per-modality bool (B, N_m), True = hidden from the encoder.
        specs: the full mask specs (ids_keep / ids_restore / decoder selection).
        grids: the token grid of each modality.
        loss_mask: per-modality bool over ``pred``'s positions: what the loss counted (hidden,
            decoded, not padding).
    """

    loss: Tensor
    losses: dict[str, Tensor]
    pred: dict[str, Tensor]
    mask: dict[str, Tensor]
    specs: dict[str, MaskSpec] = field(default_factory=dict)
    grids: dict[str, tuple[int, ...]] = field(default_factory=dict)
    loss_mask: dict[str, Tensor] = field(default_factory=dict)
