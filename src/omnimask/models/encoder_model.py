"""``OmniMaskModel``: tokenizers + the shared encoder, for feature extraction and fine-tuning."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..backbone.blocks import init_qkv_split, init_vit_weights
from ..backbone.encoder import TransformerEncoder
from ..masking.base import gather_tokens, spec_from_mask
from ..modalities import MODALITIES, TokenizedInput
from ..model_config import OmniMaskConfig
from .hub import HubMixin
from .outputs import EncoderOutput, OmniMaskModelOutput

__all__ = ["OmniMaskModel"]

log = logging.getLogger(__name__)

PRETRAINING_PREFIX = "omnimask."


class OmniMaskModel(HubMixin, nn.Module):
    """Encoder-only omnimask model: every modality's tokenizer, ``[CLS]``, modality embeddings, encoder.

    Call it with a batch dict (``model({"image": x})``) or keywords (``model(image=x)``).
    """

    def __init__(self, config: OmniMaskConfig) -> None:
        super().__init__()
        self.config = config
        enc = config.encoder_config
        self.modalities = list(config.modalities)
        self.tokenizers = nn.ModuleDict(
            {
                k: MODALITIES.get(m["type"]).tokenizer(dim=enc.dim, **m["tokenizer"])
                for k, m in config.modalities.items()
            }
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, enc.dim)) if enc.cls_token else None
        # Point-MAE's fine-tuning model gives [CLS] a learned position, re-added before every block.
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, enc.dim)) if enc.cls_token and enc.pos_every_block else None
        self.modality_embed = (
            nn.ParameterDict({k: nn.Parameter(torch.zeros(1, 1, enc.dim)) for k in self.modalities})
            if config.use_modality_embed
            else None
        )
        self.encoder = TransformerEncoder(enc, self.modalities)
        stray = [k for k in enc.modality_specific or [] if k not in self.modalities]
        if stray:
            raise ValueError(f"encoder.modality_specific names {stray}; the model has {self.modalities}")
        self.encoder.apply(init_vit_weights)
        if enc.qkv_init == "split":
            self.encoder.apply(init_qkv_split)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        if self.cls_pos is not None:
            nn.init.trunc_normal_(self.cls_pos, std=0.02)
        if self.modality_embed is not None:
            for p in self.modality_embed.values():
                nn.init.normal_(p, std=0.02)

    @property
    def dim(self) -> int:
        return self.config.encoder["dim"]

    def collect_inputs(
        self, inputs: dict[str, Tensor] | None, kwargs: dict[str, Any], present: dict[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Merge ``inputs`` and keyword modalities; reject unknown names, empty batches, batch sizes
        that disagree (a modality in ``present`` covers only its flagged samples) and NaN/inf."""
        batch = {**(inputs or {}), **kwargs}
        unknown = [k for k in batch if k not in self.tokenizers]
        if unknown:
            raise KeyError(f"unknown modality {unknown} in the batch; this model has {self.modalities}")
        if not batch:
            raise ValueError(f"empty batch: pass at least one of {self.modalities}")
        present = present or {}
        sizes = {k: (len(present[k]) if k in present else v.shape[0]) if v.ndim else 0 for k, v in batch.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"batch sizes differ between modalities: {sizes}")
        empty = [k for k, n in sizes.items() if n == 0]
        if empty:
            raise ValueError(f"empty batch for {empty}: inputs need at least one sample, got shapes "
                             f"{ {k: tuple(batch[k].shape) for k in empty} }")  # fmt: skip
        for k, x in batch.items():
            if x.is_floating_point():
                bad = ~torch.isfinite(x.detach()).flatten(1).all(dim=1)
                if bad.any():
                    rows = bad.nonzero().flatten().tolist()
                    raise ValueError(
                        f"input {k!r} has NaN or inf values in sample(s) {rows[:10]}{' ...' if len(rows) > 10 else ''} "
                        f"of the batch (shape {tuple(x.shape)}); check the data or its normalisation"
                    )
        return batch

    def embed(self, batch: dict[str, Tensor], interpolate_pos: bool = False) -> dict[str, TokenizedInput]:
        """Tokenize every modality: ``{name: TokenizedInput}`` (tokens, grid, and for point-like
        modalities per-sample positions, coordinates and the reconstruction target)."""
        return {k: self.tokenizers[k].tokenize(x, interpolate_pos) for k, x in batch.items()}

    @staticmethod
    def gather_visible(
        tokenized: dict[str, TokenizedInput], ids_keep: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        """What enters the encoder: per modality the tokens, per-sample positions and padding flags
        at ``ids_keep[m]`` (B, K_m) (every token when ``m`` has no entry).

        Returns ``(visible, pos, valid)``: (B, K_m, D) tokens; (B, K_m, D) positions of the
        modalities that have them; (B, K_m) bool validity of the modalities with padding.
        """
        visible, pos, valid = {}, {}, {}
        for k, t in tokenized.items():
            keep = ids_keep.get(k)
            visible[k] = t.tokens if keep is None else gather_tokens(t.tokens, keep)
            if t.pos is not None:
                pos[k] = t.pos if keep is None else gather_tokens(t.pos, keep)
            if t.valid is not None:
                valid[k] = t.valid if keep is None else torch.gather(t.valid, 1, keep)
        return visible, pos, valid

    def encode(
        self,
        visible: dict[str, Tensor],
        output_hidden_states: bool = False,
        pos: dict[str, Tensor] | None = None,
        valid: dict[str, Tensor] | None = None,
    ) -> EncoderOutput:
        """Run the encoder once over ``[CLS] + visible tokens of every modality``: each modality's
        own first blocks (``encoder.modality_specific_depth``), then the shared blocks jointly.

        Args:
            visible: per modality (B, K_m, D) tokens.
            pos: per modality (B, K_m, D) positions not yet added (modalities with per-sample
                positions); added once here, or before every block with ``encoder.pos_every_block``.
            valid: per modality (B, K_m) bool, False = padding no token attends to (text).
        """
        pos, valid = pos or {}, valid or {}
        return self.encode_shared(self.enter(visible, pos, valid), output_hidden_states, pos, valid)

    def enter(self, visible: dict[str, Tensor], pos: dict[str, Tensor], valid: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each modality's tokens as they enter the shared blocks: modality embedding (and its
        positions, unless they are re-added before every block) added, its own blocks run."""
        every_block = self.config.encoder_config.pos_every_block
        specific = self.encoder.specific_keys
        out = {}
        for k, tok in visible.items():
            p = pos.get(k)
            if p is not None and not every_block:
                tok = tok + p
            tok = tok + self.modality_embed[k] if self.modality_embed is not None else tok
            if k in specific:
                tok = self.encoder.forward_specific(k, tok, valid.get(k), p if every_block else None)
            out[k] = tok
        return out

    def encode_shared(
        self,
        entered: dict[str, Tensor],
        output_hidden_states: bool = False,
        pos: dict[str, Tensor] | None = None,
        valid: dict[str, Tensor] | None = None,
    ) -> EncoderOutput:
        """The shared blocks over ``[CLS] + entered tokens`` (see :meth:`enter`). One modality alone
        runs with its own LayerNorms when the encoder keeps them (``encoder.modality_norms``)."""
        pos, valid = pos or {}, valid or {}
        b = next(iter(entered.values())).shape[0]
        every_block = self.config.encoder_config.pos_every_block
        seq, pos_seq = [], []
        if self.cls_token is not None:
            seq.append(self.cls_token.expand(b, -1, -1))
            pos_seq.append(
                self.cls_pos.expand(b, -1, -1) if self.cls_pos is not None else seq[-1].new_zeros(b, 1, self.dim)
            )
        for k, tok in entered.items():
            seq.append(tok)
            p = pos.get(k) if every_block else None
            pos_seq.append(p if p is not None else tok.new_zeros(tok.shape))
        x = torch.cat(seq, dim=1)
        key_valid = None
        if valid:
            flags = [torch.ones(b, 1, dtype=torch.bool, device=x.device)] if self.cls_token is not None else []
            flags += [
                valid[k] if k in valid else torch.ones(b, tok.shape[1], dtype=torch.bool, device=x.device)
                for k, tok in entered.items()
            ]
            key_valid = torch.cat(flags, dim=1)
        block_pos = (
            torch.cat(pos_seq, dim=1).to(x.dtype) if every_block and any(p is not None for p in pos.values()) else None
        )
        alone = self.config.encoder_config.modality_norms and len(entered) == 1
        norm_key = next(iter(entered)) if alone else None
        layers = None
        if output_hidden_states:
            x, layers = self.encoder(x, key_valid, return_layers=True, pos=block_pos, norm_key=norm_key)
        else:
            x = self.encoder(x, key_valid, pos=block_pos, norm_key=norm_key)
        g = 1 if self.cls_token is not None else 0
        parts = dict(zip(entered, torch.split(x[:, g:], [t.shape[1] for t in entered.values()], dim=1)))
        return EncoderOutput(x, x[:, :g], parts, layers, entered)

    def forward(
        self,
        inputs: dict[str, Tensor] | None = None,
        masks: dict[str, Tensor] | None = None,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool = False,
        **modalities: Tensor,
    ) -> OmniMaskModelOutput:
        """Encode all tokens (or only the visible ones, given ``masks={name: bool (B, N)}``, True = hidden)."""
        batch = self.collect_inputs(inputs, modalities)
        return self.encode_tokenized(self.embed(batch, interpolate_pos_encoding), masks, output_hidden_states)

    def encode_tokenized(
        self,
        tokenized: dict[str, TokenizedInput],
        masks: dict[str, Tensor] | None = None,
        output_hidden_states: bool = False,
    ) -> OmniMaskModelOutput:
        """:meth:`forward` after :meth:`embed`: for callers that need the tokenized input first (a
        mask drawn from its grid or coordinates) without tokenizing twice."""
        ids_keep = {
            k: spec_from_mask(masks[k].to(t.tokens.device), f"masks[{k!r}]").ids_keep
            for k, t in tokenized.items()
            if masks and k in masks
        }
        visible, pos, valid = self.gather_visible(tokenized, ids_keep)
        out = self.encode(visible, output_hidden_states, pos, valid)
        tokens = torch.cat(list(out.parts.values()), dim=1)
        if valid:  # the mean over real tokens: padding does not dilute it
            w = torch.cat(
                [
                    valid.get(k, torch.ones(p.shape[:2], dtype=torch.bool, device=p.device))
                    for k, p in out.parts.items()
                ],
                1,
            )
            w = w.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * w).sum(1) / w.sum(1).clamp(min=1)
        else:
            pooled = tokens.mean(dim=1)
        return OmniMaskModelOutput(
            last_hidden_state=out.last_hidden_state,
            pooler_output=pooled,
            hidden=out.parts,
            cls=out.global_tokens[:, 0] if out.global_tokens.shape[1] else None,
            hidden_states=out.hidden_states,
        )

    @classmethod
    def _adapt_state_dict(cls, state: dict[str, Tensor], source: Path) -> dict[str, Tensor]:
        if not any(k.startswith(PRETRAINING_PREFIX) for k in state):
            return state
        kept = {k[len(PRETRAINING_PREFIX) :]: v for k, v in state.items() if k.startswith(PRETRAINING_PREFIX)}
        dropped = sorted(
            {k.split(".")[0] + "." + k.split(".")[1] for k in state if not k.startswith(PRETRAINING_PREFIX)}
        )
        log.info(
            "%s: loading the encoder of a pretraining checkpoint; dropped %d tensors of %s",
            source,
            len(state) - len(kept),
            dropped,
        )
        return kept
