"""The decoder contract and registry.

A decoder gets the encoded visible tokens of *its* modality (in encoder order), the modality's
:class:`~omnimask.masking.MaskSpec`, a position table for the full token grid at the decoder's
width, and optionally the rest of the encoded sequence as context (global tokens such as
``[CLS]``, and other modalities' visible tokens), and the token grid as the keyword ``grid``
(decoders that attend within local windows of the grid need its shape). It returns a prediction for **every** one of the
N grid positions, in the modality's reference patch layout: ``(B, N, out_dim)``.

Constructors receive ``in_dim`` (encoder width) and ``out_dim`` (the modality's ``patch_dim``) from
the model, and a decoder exposes its width as ``.dim``: the model builds the decoder's position
table at that width.

Two optional attributes ask the model for more: ``decode_ratio < 1`` (partial decoding: the model
selects that fraction of the hidden positions as ``spec.ids_decode`` and the loss counts only them)
and ``wants_layers`` (the model passes the modality's tokens after every encoder block as the
keyword ``layers``; CrossMAE's feature fusion).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from torch import Tensor, nn

from ..masking.base import MaskSpec
from ..registry import Registry, discoverer

__all__ = ["DECODERS", "Decoder", "check_decode_ratio"]


def check_decode_ratio(value: object, where: str = "decode_ratio") -> float:
    """``value`` as a fraction in (0, 1], or a ValueError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
        raise ValueError(
            f"{where} is the fraction of the hidden positions the decoder reconstructs, a number in (0, 1]; "
            f"got {value!r}"
        )
    return float(value)


class Decoder(nn.Module):
    """Base of every decoder: the call signature the model uses, and what the decoder predicts.

    Attributes:
        dim: the decoder's width; the model builds the decoder's position table at this width.
        predict: ``"all"`` grid positions (MAE), or only the ``"hidden"`` ones (Point-MAE's
            ``center[mask]``): the model then selects the hidden positions as the decoded ones.
    """

    dim: int
    predict: Literal["all", "hidden"] = "all"
    #: The values ``predict`` may take, for the constructors that let a config choose.
    PREDICT: ClassVar[tuple[str, ...]] = ("all", "hidden")

    def forward(
        self,
        visible: Tensor,
        spec: MaskSpec,
        pos: Tensor,
        global_tokens: Tensor | None = None,
        other_tokens: Tensor | None = None,
        grid: tuple[int, ...] | None = None,
        valid: Tensor | None = None,
    ) -> Tensor:
        """Predict the decoded positions of one modality.

        Args:
            visible: (B, K, in_dim) encoded visible tokens of this modality, in encoder order.
            spec: its mask (``ids_restore`` puts tokens back in grid order; ``ids_decode``, when
                set, lists the positions to predict).
            pos: (N, dim) or (B, N, dim) positions of the full grid at the decoder's width.
            global_tokens: (B, G, in_dim) encoded ``[CLS]``-like tokens, or None.
            other_tokens: (B, M, in_dim) other modalities' encoded visible tokens, or None.
            grid: the token grid (``prod(grid) == N``).
            valid: (B, N) bool, False = padding (text).

        Returns:
            (B, N, out_dim) in grid order, or (B, Q, out_dim) at ``spec.ids_decode``.
        """
        raise NotImplementedError


DECODERS: Registry = Registry("decoder", discover=discoverer("omnimask.decoders", "omnimask.decoders"))
