"""The modality contract: what one modality must provide to the shared core.

A modality is one package (``modalities/<name>/``, or a third-party package declaring an
``omnimask.modalities`` entry point) that defines a :class:`Tokenizer` subclass and registers a
:class:`ModalitySpec`. The shared core (backbone, masking, decoders, objectives, models) only ever
talks to these two objects, so it never imports a concrete modality.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from ..registry import Registry, discoverer

__all__ = ["Tokenizer", "TokenizedInput", "ModalitySpec", "MODALITIES", "register_modality"]


@dataclass
class TokenizedInput:
    """One modality's batch after tokenization (what :meth:`Tokenizer.tokenize` returns).

    Attributes:
        tokens: (B, N, D) tokens. Positions are already added, unless ``pos`` is given.
        grid: the token grid (``prod(grid) == N``).
        pos: optional (B, N, D) per-sample positions, not yet added: a tokenizer whose positions
            depend on the sample (point-group centres) returns them separately, so the encoder can
            add them once at its input or before every block (``encoder.pos_every_block``).
        coords: optional (B, N, c) coordinates of each token (point-group centres): they drive
            spatial masking and the decoder's position embedding.
        target: optional (B, N, patch_dim) reconstruction target, when tokenizing already computed
            it (point groups come out of the same sampling pass); ``None`` = ``tokenizer.patchify(x)``.
        valid: optional (B, N) bool, False marks padding (text): no token attends to it and it is
            never a reconstruction target.
    """

    tokens: Tensor
    grid: tuple[int, ...]
    pos: Tensor | None = None
    coords: Tensor | None = None
    target: Tensor | None = None
    valid: Tensor | None = None


class Tokenizer(nn.Module):
    """Turns a batch of raw modality tensors into (B, N, D) tokens with positions added.

    Subclasses take ``dim`` (the encoder width, supplied by the model) plus their own keyword
    arguments, which are what ``config.json`` stores under ``modalities.<name>.tokenizer``.

    Attributes:
        patch_dim: values per token in the reconstruction target (P).
        channels: channels per patch vector (the last, fastest axis of P).
        base_grid: the token grid the model was built for.
    """

    patch_dim: int
    channels: int
    base_grid: tuple[int, ...]
    #: False for fixed position tables of the grid (image, video); True when positions are a learned
    #: function of each token's coordinates (points): then :meth:`tokenize` returns ``pos`` and
    #: ``coords``, and :meth:`position_embedding` builds the decoder's position module.
    coordinate_positions: bool = False

    @property
    def output_dim(self) -> int:
        """Values the decoder predicts per token: ``patch_dim`` for regression targets; a text
        tokenizer predicts one logit per vocabulary entry."""
        return self.patch_dim

    def replace_hidden(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x`` with the hidden tokens (``mask`` True) replaced by the modality's mask symbol, for
        ``encoder_mask: replace`` (BERT-style: the encoder sees ``[MASK]`` where a token was)."""
        raise NotImplementedError(f"{type(self).__name__} has no mask symbol: use encoder_mask: drop")

    def grid(self, x: Tensor, interpolate_pos: bool = False) -> tuple[int, ...]:
        """Validate ``x`` and return its token grid; raise ValueError naming what is wrong."""
        raise NotImplementedError

    def positions(self, grid: tuple[int, ...], dim: int) -> Tensor:
        """(N, dim) fixed position table for ``grid`` (float32, CPU); used by encoder and decoders."""
        raise NotImplementedError

    def forward(self, x: Tensor, interpolate_pos: bool = False) -> tuple[Tensor, tuple[int, ...]]:
        """Returns ``(tokens (B, N, dim) with positions added, grid)``."""
        raise NotImplementedError

    def tokenize(self, x: Tensor, interpolate_pos: bool = False) -> TokenizedInput:
        """Everything the models need from one batch; the default wraps :meth:`forward`."""
        tokens, grid = self(x, interpolate_pos)
        return TokenizedInput(tokens, grid)

    def position_embedding(self, dim: int) -> nn.Module:
        """A fresh learned module mapping ``coords`` (B, N, c) to (B, N, dim) positions
        (``coordinate_positions`` tokenizers; decoders get their own)."""
        raise NotImplementedError(f"{type(self).__name__} uses fixed position tables, not coordinates")

    def patchify(self, x: Tensor) -> Tensor:
        """(B, ...) raw input -> (B, N, patch_dim) reconstruction targets in the reference layout."""
        raise NotImplementedError

    def unpatchify(self, patches: Tensor, grid: tuple[int, ...]) -> Tensor:
        """Inverse of :meth:`patchify`."""
        raise NotImplementedError


@dataclass(frozen=True)
class ModalitySpec:
    """Everything the core needs to know about one modality.

    Attributes:
        name: registry name (lower case), e.g. ``"image"``.
        tokenizer: the :class:`Tokenizer` subclass.
        masking, decoder, objective: default component configs (``{"name": ..., **kwargs}``).
        processor: default preprocessing settings saved with a model (e.g. normalisation).
        build_processor: ``(tokenizer_cfg, processor_cfg) -> callable`` turning one raw sample
            into the tensor the tokenizer expects (used by :class:`omnimask.OmniMaskProcessor`).
        visualize: optional ``(inputs, pred, mask, tokenizer, objective, processor_cfg) -> PIL.Image``.
        build_dataset: optional ``(data_config, modality_cfg, split) -> Dataset`` reading this
            modality in its reference on-disk format (``data_config``: an instance of
            :attr:`data_config`, built from the recipe's ``data.<key>``) (split is ``"train"`` for pretraining with
            augmentation, ``"train_eval"``/``"val"`` without); items are ``{key: tensor, "label": int}``.
        example_input: ``(tokenizer_cfg, batch_size) -> Tensor`` a valid random batch, used by the
            contract tests that run over every registered modality.
    """

    name: str
    tokenizer: type[Tokenizer]
    example_input: Callable[[dict, int], Tensor]
    #: A strategy's own constructor holds its default ratio: a spec names a ratio only where its
    #: reference recipe chose one (MAE 0.75, VideoMAE 0.9, AudioMAE 0.8, Point-MAE 0.6).
    masking: dict = field(default_factory=lambda: {"name": "random"})
    decoder: dict = field(default_factory=lambda: {"name": "transformer"})
    objective: dict = field(default_factory=lambda: {"name": "mse"})
    processor: dict = field(default_factory=dict)
    build_processor: Callable[[dict, dict], Callable[[Any], Tensor]] | None = None
    visualize: Callable[..., Any] | None = None
    build_dataset: Callable[[Any, dict, str], Any] | None = None
    #: The dataclass of ``data.<key>`` in a recipe: validated once when the recipe is loaded, and
    #: the built object is what ``build_dataset`` receives.
    data_config: type | None = None
    description: str = ""
    #: Optional ``(modality_cfg, directory, key) -> processor updates``: writes files the processor
    #: needs (a text tokenizer) next to a saved model; paths in the updates are relative to it.
    save_assets: Callable[[dict, Any, str], dict] | None = None
    #: ``drop``: hidden tokens are left out of the encoder (MAE); ``replace``: they enter it as the
    #: tokenizer's mask symbol and the decoder reads every position (BERT; M3AE's MLM head).
    encoder_mask: str = "drop"


#: Filled on first lookup: every modality package under ``omnimask/modalities/`` and every
#: installed entry point of the group ``omnimask.modalities`` (third-party modalities).
MODALITIES: Registry[ModalitySpec] = Registry(
    "modality", discover=discoverer("omnimask.modalities", "omnimask.modalities", packages_only=True)
)


def register_modality(spec: ModalitySpec) -> ModalitySpec:
    """Register ``spec`` under ``spec.name``; raises KeyError on a duplicate name."""
    MODALITIES.register(spec.name)(spec)
    return spec
