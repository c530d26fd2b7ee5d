"""``OmniMaskForPreTraining``: mask every modality, encode the visible tokens once, decode each.

One step (DESIGN.md section 2)::

    batch {m: x_m} -> tokenizer[m] -> tokens (B, N_m, D) + positions
      -> masking[m] -> MaskSpec (ids_keep, ids_restore, mask True = hidden)
      -> [CLS] + visible tokens of all modalities (+ modality embeddings) -> shared encoder
      -> decoder[m] (its own tokens in place, mask tokens at hidden positions, the rest as context)
      -> objective[m](pred, tokenizer[m].patchify(x_m), mask) -> losses[m] -> weighted sum
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..backbone.blocks import init_vit_weights
from ..decoders import DECODERS
from ..masking import MaskSpec, build_masking, gather_tokens, with_decode
from ..model_config import OmniMaskConfig
from ..objectives import OBJECTIVES
from .encoder_model import PRETRAINING_PREFIX, OmniMaskModel
from .hub import HubMixin
from .outputs import OmniMaskPreTrainingOutput

__all__ = ["OmniMaskForPreTraining"]


class _Buffers(nn.Module):
    """Holds non-persistent buffers (fixed tables) so they follow ``.to()`` but never enter checkpoints."""

    def add(self, name: str, value: Tensor) -> None:
        self.register_buffer(name, value, persistent=False)


def spec_all_visible(spec: MaskSpec) -> MaskSpec:
    """The encoder's view under ``encoder_mask: replace``: every position enters, in grid order;
    ``mask`` still marks the hidden (replaced) positions the loss counts."""
    b, n = spec.mask.shape
    ar = torch.arange(n, device=spec.mask.device).expand(b, n)
    return MaskSpec(ar, ar, spec.mask, spec.decode, spec.ids_decode)


def _replace(tokenizer: Any, x: Tensor, mask: Tensor, interpolate_pos: bool, original: Any) -> Any:
    """Re-tokenize ``x`` with its hidden tokens replaced; keep the original target and padding."""
    t = tokenizer.tokenize(tokenizer.replace_hidden(x, mask), interpolate_pos)
    t.target = original.target if original.target is not None else tokenizer.patchify(x)
    t.valid = original.valid
    return t


class OmniMaskForPreTraining(HubMixin, nn.Module):
    """Masked-modeling pretraining model over any registered modalities.

    ``model(batch, noise=None, masks=None)`` with ``batch = {modality: tensor}``; ``noise[m]`` (B, N_m)
    reproduces MAE's random masking exactly, ``masks[m]`` (B, N_m) bool (True = hidden) fixes the mask
    (e.g. one made in the data loader), ``decode_masks[m]`` (B, N_m) bool (True = reconstructed)
    fixes which positions the decoder predicts (VideoMAE V2), ``mask_seeds[m]`` (B,) draws each
    sample's mask from its own seed.
    """

    def __init__(self, config: OmniMaskConfig) -> None:
        super().__init__()
        self.config = config
        self.omnimask = OmniMaskModel(config)
        self.modalities = self.omnimask.modalities
        dim = config.encoder["dim"]
        self.decoders = nn.ModuleDict()
        self.objectives = nn.ModuleDict()
        self.maskings = {}
        self.decoder_pos = _Buffers()  # fixed tables (grid tokenizers)
        self.decoder_pos_embed = nn.ModuleDict()  # learned position modules (coordinate tokenizers)
        for k, m in config.modalities.items():
            tok = self.omnimask.tokenizers[k]
            where = f"modalities.{k}"
            dec_cfg = {n: v for n, v in m["decoder"].items() if n != "name"}
            self.decoders[k] = DECODERS.build(
                m["decoder"]["name"], dec_cfg, f"{where}.decoder", in_dim=dim, out_dim=tok.output_dim
            )
            obj_cfg = {n: v for n, v in m["objective"].items() if n != "name"}
            self.objectives[k] = OBJECTIVES.build(
                m["objective"]["name"],
                obj_cfg,
                f"{where}.objective",
                channels=tok.channels,
                input_mean=m["processor"].get("mean"),
                input_std=m["processor"].get("std"),
            )
            self.maskings[k] = build_masking(m["masking"], f"{where}.masking")
            if tok.coordinate_positions:
                self.decoder_pos_embed[k] = tok.position_embedding(self.decoders[k].dim)
            else:
                self.decoder_pos.add(k, tok.positions(tok.base_grid, self.decoders[k].dim))
        self.decoders.apply(init_vit_weights)

    def _decoder_inputs(self, key: str, enc: Any) -> dict[str, Tensor]:
        """Each modality's encoded tokens, from the encoder's output or, with ``decoder_layer: l``,
        from the output of block ``l`` (before the final norm; medical M3AE decodes images there)."""
        layer = self.config.modalities[key]["decoder_layer"]
        if not layer:
            return enc.parts
        depth = len(self.omnimask.encoder.blocks)
        if layer > depth:
            raise ValueError(f"modalities.{key}.decoder_layer {layer} exceeds the encoder's {depth} blocks")
        g = enc.global_tokens.shape[1]
        sizes = [p.shape[1] for p in enc.parts.values()]
        return dict(zip(enc.parts, torch.split(enc.hidden_states[layer - 1][:, g:], sizes, dim=1)))

    def _decoder_positions(self, key: str, grid: tuple[int, ...], coords: Tensor | None) -> Tensor:
        tok = self.omnimask.tokenizers[key]
        if key in self.decoder_pos_embed:
            return self.decoder_pos_embed[key](coords)
        table = getattr(self.decoder_pos, key)
        if tuple(grid) == tuple(tok.base_grid):
            return table
        return tok.positions(grid, self.decoders[key].dim).to(table.device)

    def forward(
        self,
        inputs: dict[str, Tensor] | None = None,
        noise: dict[str, Tensor] | None = None,
        masks: dict[str, Tensor] | None = None,
        generator: torch.Generator | None = None,
        decode_masks: dict[str, Tensor] | None = None,
        mask_seeds: dict[str, Tensor] | None = None,
        interpolate_pos_encoding: bool = False,
        **modalities: Tensor,
    ) -> OmniMaskPreTrainingOutput:
        batch = self.omnimask.collect_inputs(inputs, modalities)
        noise, masks, decode_masks, mask_seeds = noise or {}, masks or {}, decode_masks or {}, mask_seeds or {}
        for name, given in (
            ("noise", noise),
            ("masks", masks),
            ("decode_masks", decode_masks),
            ("mask_seeds", mask_seeds),
        ):
            stray = [k for k in given if k not in batch]
            if stray:
                raise KeyError(f"{name} given for {stray}, which are not in the batch {list(batch)}")
        tokens = self.omnimask.embed(batch, interpolate_pos_encoding)
        specs, enc_specs, visible, visible_pos, visible_valid, grids = {}, {}, {}, {}, {}, {}
        for k, t in tokens.items():
            seeds = mask_seeds.get(k)
            spec = self.maskings[k](
                t.tokens.shape[0],
                t.grid,
                device=t.tokens.device,
                noise=noise.get(k),
                mask=masks.get(k),
                decode=decode_masks.get(k),
                generator=None if seeds is not None or k in noise or k in masks else generator,
                seeds=seeds,
                coords=t.coords,
                valid=t.valid,
            )
            if spec.ids_decode is None and getattr(self.decoders[k], "predict", "all") == "hidden":
                spec = with_decode(spec, spec.mask, f"modalities.{k}: the decoder predicts hidden positions; mask")
            specs[k] = spec
            enc_spec = spec
            if self.config.modalities[k]["encoder_mask"] == "replace":
                # BERT-style: every position enters the encoder, hidden ones as the mask symbol.
                t = tokens[k] = _replace(self.omnimask.tokenizers[k], batch[k], spec.mask, interpolate_pos_encoding, t)
                enc_spec = spec_all_visible(spec)
            enc_specs[k] = enc_spec
            visible[k] = gather_tokens(t.tokens, enc_spec.ids_keep)
            if t.pos is not None:
                visible_pos[k] = gather_tokens(t.pos, enc_spec.ids_keep)
            if t.valid is not None:
                visible_valid[k] = torch.gather(t.valid, 1, enc_spec.ids_keep)
            grids[k] = t.grid
        layers_needed = any(self.config.modalities[k]["decoder_layer"] for k in specs)
        enc = self.omnimask.encode(visible, output_hidden_states=layers_needed, pos=visible_pos, valid=visible_valid)
        losses, preds, loss_masks = {}, {}, {}
        for k, spec in specs.items():
            parts = self._decoder_inputs(k, enc)
            others = [p for j, p in parts.items() if j != k]
            extra = {"valid": tokens[k].valid} if tokens[k].valid is not None else {}
            pred = self.decoders[k](
                parts[k],
                enc_specs[k],
                self._decoder_positions(k, grids[k], tokens[k].coords).to(parts[k].dtype),
                global_tokens=enc.global_tokens if enc.global_tokens.shape[1] else None,
                other_tokens=torch.cat(others, dim=1) if others else None,
                grid=grids[k],
                **extra,
            )
            target = (
                tokens[k].target if tokens[k].target is not None else self.omnimask.tokenizers[k].patchify(batch[k])
            )
            loss_mask = spec.loss_mask
            if tokens[k].valid is not None:  # padding is never a target
                valid = (
                    tokens[k].valid if spec.ids_decode is None else torch.gather(tokens[k].valid, 1, spec.ids_decode)
                )
                loss_mask = loss_mask & valid
            if spec.ids_decode is not None:  # the decoder predicted only the selected positions
                target = gather_tokens(target, spec.ids_decode)
            losses[k] = self.objectives[k](pred, target, loss_mask)
            preds[k], loss_masks[k] = pred, loss_mask
        weights = {k: self.config.modalities[k]["loss_weight"] for k in losses}
        loss = sum(weights[k] * losses[k] for k in losses)
        return OmniMaskPreTrainingOutput(
            loss=loss,  # type: ignore[arg-type]
            losses=losses,
            pred=preds,
            mask={k: s.mask for k, s in specs.items()},
            specs=specs,
            grids=grids,
            loss_mask=loss_masks,
        )

    @torch.no_grad()
    def visualize(self, key: str, inputs: Tensor, out: OmniMaskPreTrainingOutput) -> Any:
        """A picture of inputs, masks and reconstructions for modality ``key`` (PIL image), if it has one."""
        from ..modalities import MODALITIES

        m = self.config.modalities[key]
        viz = MODALITIES.get(m["type"]).visualize
        if viz is None:
            return None
        pred, mask, spec = out.pred[key], out.mask[key], out.specs[key]
        if spec.ids_decode is not None:  # dual masking: undecoded positions show the prediction 0
            full = pred.new_zeros(pred.shape[0], mask.shape[1], pred.shape[-1])
            pred = full.scatter(1, spec.ids_decode.unsqueeze(-1).expand(-1, -1, pred.shape[-1]), pred)
        return viz(inputs, pred, mask, self.omnimask.tokenizers[key], self.objectives[key], m["processor"])

    @classmethod
    def _adapt_state_dict(cls, state: dict[str, Tensor], source: Path) -> dict[str, Tensor]:
        if not any(k.startswith(PRETRAINING_PREFIX) for k in state):
            raise ValueError(
                f"{source} is an encoder-only checkpoint (no decoders); load it with OmniMaskModel, "
                "or build OmniMaskForPreTraining(config) and load the encoder with "
                "model.omnimask.load_state_dict(OmniMaskModel.from_pretrained(path).state_dict())"
            )
        return state
