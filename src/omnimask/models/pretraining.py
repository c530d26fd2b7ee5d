"""``OmniMaskForPreTraining``: mask every modality, encode the visible tokens once, decode each.

One step (DESIGN.md section 2), in four stages as MAE's forward_encoder / forward_decoder /
forward_loss (:meth:`~OmniMaskForPreTraining.forward_masking`, ``forward_encoder``,
``forward_decoder``, ``forward_loss``)::

    batch {m: x_m} -> tokenizer[m] -> tokens (B, N_m, D) + positions
      -> masking[m] -> MaskSpec (ids_keep, ids_restore, mask True = hidden)
      -> [CLS] + visible tokens of all modalities (+ modality embeddings) -> shared encoder
      -> decoder[m] (its own tokens in place, mask tokens at hidden positions, the rest as context)
      -> objective[m](pred, tokenizer[m].patchify(x_m), mask) -> losses[m] -> weighted sum
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..backbone.blocks import init_vit_weights
from ..decoders import DECODERS, Decoder
from ..decoders.joint import JointDecoder, JointDecoderConfig
from ..masking import MaskSpec, build_masking, gather_tokens, spec_from_noise, uniform_noise, with_decode
from ..masking.budget import RatioSchedule, draw_budget, set_ratio
from ..modalities import TokenizedInput
from ..model_config import OmniMaskConfig
from ..objectives import OBJECTIVES
from ..registry import ConfigError
from ..run_config import from_dict
from .decoding import decode_selection, layer_parts
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


def _check_present(batch: dict[str, Tensor], present: dict[str, Tensor]) -> dict[str, Tensor]:
    """Validate per-sample presence flags; modalities present in every sample need none."""
    out = {}
    for k, rows in present.items():
        if k not in batch:
            raise KeyError(f"present given for {k!r}, which is not in the batch {list(batch)}")
        rows = rows.to(torch.bool)
        if rows.ndim != 1 or int(rows.sum()) != batch[k].shape[0]:
            raise ValueError(
                f"present[{k!r}] must be (batch,) bool with one True per sample of {k!r} "
                f"({batch[k].shape[0]}), got shape {tuple(rows.shape)} with {int(rows.sum())} True"
            )
        if not bool(rows.all()):
            out[k] = rows
    sizes = {len(r) for r in present.values()}
    if len(sizes) > 1:
        raise ValueError(f"present flags disagree on the batch size: {sorted(sizes)}")
    return out


def _expand_rows(t: TokenizedInput, rows: Tensor, tokenizer: Any, x: Tensor) -> TokenizedInput:
    """Tokens of the present samples placed in a full batch; absent samples are padding."""
    b, n = rows.shape[0], t.tokens.shape[1]

    def fill(v: Tensor | None, value: float | bool = 0) -> Tensor | None:
        if v is None:
            return None
        out = v.new_full((b, *v.shape[1:]), value)
        out[rows] = v
        return out

    target = t.target if t.target is not None else tokenizer.patchify(x)
    valid = rows[:, None].expand(b, n).clone()
    if t.valid is not None:
        valid &= fill(t.valid, False)  # type: ignore[operator]
    return TokenizedInput(fill(t.tokens), t.grid, fill(t.pos), fill(t.coords), fill(target), valid)  # type: ignore[arg-type]


def _with_target(spec: MaskSpec, count: int, valid: Tensor | None, noise: Tensor) -> MaskSpec:
    """Reconstruct ``count`` hidden positions per sample (real ones first), chosen by ``noise``."""
    b, n = spec.mask.shape
    if count == 0:
        empty = torch.zeros(b, 0, dtype=torch.long, device=spec.mask.device)
        return MaskSpec(spec.ids_keep, spec.ids_restore, spec.mask, torch.zeros_like(spec.mask), empty)
    rank = noise + (~spec.mask).float() * 4.0  # hidden first ...
    if valid is not None:
        rank = rank + (~valid).float() * 2.0  # ... and among them real tokens first
    chosen = torch.argsort(rank, dim=1)[:, :count]
    decode = torch.zeros_like(spec.mask).scatter(1, chosen, True)
    return with_decode(spec, decode, "budget target")


class OmniMaskForPreTraining(HubMixin, nn.Module):
    """Masked-modeling pretraining model over any registered modalities.

    ``model(batch, noise=None, masks=None)`` with ``batch = {modality: tensor}``; ``noise[m]`` (B, N_m)
    reproduces MAE's random masking exactly, ``masks[m]`` (B, N_m) bool (True = hidden) fixes the mask
    (e.g. one made in the data loader), ``decode_masks[m]`` (B, N_m) bool (True = reconstructed)
    fixes which positions the decoder predicts (VideoMAE V2), ``mask_seeds[m]`` (B,) draws each
    sample's mask from its own seed.

    A batch may carry any subset of the model's modalities; with ``present[m]`` (B,) bool a
    modality covers only some samples (a batch mixing sources): ``batch[m]`` then holds just those
    ``present[m].sum()`` samples, and the others are padding that no token attends to and no loss
    counts. ``update_schedules(progress)`` moves scheduled mask ratios; a ``budget`` in the config
    splits a fixed token budget across the modalities of a batch (:mod:`omnimask.masking.budget`).
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
            if not isinstance(self.decoders[k], Decoder):
                raise TypeError(
                    f"{where}.decoder: {type(self.decoders[k]).__name__} ({m['decoder']['name']!r}) does not subclass "
                    "omnimask.decoders.Decoder, which declares what a decoder predicts"
                )
            obj_cfg = {n: v for n, v in m["objective"].items() if n != "name"}
            if getattr(OBJECTIVES.get(m["objective"]["name"]), "pairwise", False):
                raise ConfigError(
                    f"{where}.objective: {m['objective']['name']!r} compares two modalities; configure it under "
                    "`contrastive` (with its two modalities), and keep a reconstruction objective here"
                )
            self.objectives[k] = OBJECTIVES.build(
                m["objective"]["name"],
                obj_cfg,
                f"{where}.objective",
                channels=tok.channels,
                input_mean=m["processor"].get("mean"),
                input_std=m["processor"].get("std"),
            )
            self.maskings[k] = build_masking(m["masking"], f"{where}.masking")
            if getattr(self.maskings[k], "ratio", None) == 0 and m["loss_weight"] > 0 and "mask_schedule" not in m:
                raise ConfigError(
                    f"{where}.masking.ratio is 0: nothing is hidden, so pretraining has nothing to reconstruct; use a "
                    "ratio in (0, 1), or loss_weight: 0 for a modality that only gives context"
                )
            if tok.coordinate_positions:
                self.decoder_pos_embed[k] = tok.position_embedding(self.decoders[k].dim)
            else:
                self.decoder_pos.add(k, tok.positions(tok.base_grid, self.decoders[k].dim))
        self.decoders.apply(init_vit_weights)
        joint = getattr(config, "joint_decoder", None)
        self.joint_keys: list[str] = list(joint["modalities"]) if joint else []
        if joint:
            self.joint_decoder = JointDecoder(from_dict(JointDecoderConfig, joint, "joint_decoder"), dim)
            self.joint_decoder.apply(init_vit_weights)
        contrastive = dict(getattr(config, "contrastive", None) or {})
        self.contrastive_keys: list[str] = contrastive.pop("modalities", [])
        self.contrastive_weight = float(contrastive.pop("weight", 0.0))
        self.contrastive_all = contrastive.pop("tokens", "visible") == "all"
        self.contrastive = (
            OBJECTIVES.build(contrastive.pop("name"), contrastive, "contrastive") if self.contrastive_keys else None
        )
        self.schedules = {
            k: RatioSchedule(**m["mask_schedule"]) for k, m in config.modalities.items() if "mask_schedule" in m
        }
        self.budget = config.budget_config
        if self.budget is not None:
            self.budget_keys = list(self.budget.modalities or config.modalities)
            counts = {k: math.prod(self.omnimask.tokenizers[k].base_grid) for k in self.budget_keys}
            self.budget.check(counts)

    def update_schedules(self, progress: float) -> None:
        """Set every scheduled mask ratio for training progress ``progress`` in [0, 1] (the Trainer
        calls it before each step, so the ratio is a pure function of the step)."""
        for k, schedule in self.schedules.items():
            set_ratio(self.maskings[k], schedule.at(progress), f"modalities.{k}.mask_schedule")

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
        present: dict[str, Tensor] | None = None,
        **modalities: Tensor,
    ) -> OmniMaskPreTrainingOutput:
        batch = {**(inputs or {}), **modalities}
        present = _check_present(batch, present or {})
        batch = self.omnimask.collect_inputs(batch, {}, present=present)
        extras = {"noise": noise or {}, "masks": masks or {}, "decode_masks": decode_masks or {}}
        extras["mask_seeds"] = mask_seeds or {}
        for name, given in extras.items():
            stray = [k for k in given if k not in batch]
            if stray:
                raise KeyError(f"{name} given for {stray}, which are not in the batch {list(batch)}")
        tokens = self.omnimask.embed(batch, interpolate_pos_encoding)
        for k, rows in present.items():  # samples without modality k become padding
            tokens[k] = _expand_rows(tokens[k], rows, self.omnimask.tokenizers[k], batch[k])
            if self.config.modalities[k]["encoder_mask"] == "replace":
                raise ValueError(
                    f"modalities.{k}: encoder_mask 'replace' needs the modality in every sample of a batch"
                )
        specs = self.forward_masking(tokens, generator=generator, **extras)
        enc_specs = {}
        for k, spec in specs.items():
            enc_specs[k] = spec
            if self.config.modalities[k]["encoder_mask"] == "replace":
                # BERT-style: every position enters the encoder, hidden ones as the mask symbol.
                tokenizer = self.omnimask.tokenizers[k]
                tokens[k] = _replace(tokenizer, batch[k], spec.mask, interpolate_pos_encoding, tokens[k])
                enc_specs[k] = spec_all_visible(spec)
        enc = self.forward_encoder(tokens, enc_specs)
        losses, preds, loss_masks = {}, {}, {}
        joint = [k for k in self.joint_keys if k in specs]
        if joint:
            preds.update(self.forward_joint_decoder(joint, enc, enc_specs, tokens))
        for k, spec in specs.items():
            if spec.ids_decode is not None and spec.ids_decode.shape[1] == 0:  # context only in this batch
                b = spec.mask.shape[0]
                out_dim = self.omnimask.tokenizers[k].output_dim
                preds[k], loss_masks[k] = enc.last_hidden_state.new_zeros(b, 0, out_dim), spec.mask[:, :0]
                losses[k] = enc.last_hidden_state.new_zeros(())
                continue
            if k not in joint:
                preds[k] = self.forward_decoder(k, enc, enc_specs[k], tokens[k])
            losses[k], loss_masks[k] = self.forward_loss(k, batch[k], tokens[k], spec, preds[k])
        loss = sum(self.config.modalities[k]["loss_weight"] * losses[k] for k in losses)
        if self.contrastive is not None and all(k in specs and k not in present for k in self.contrastive_keys):
            a, b = (self.forward_alone(k, enc, tokens[k], enc_specs[k], self.contrastive_all)
                    for k in self.contrastive_keys)  # fmt: skip
            losses["contrastive"] = self.contrastive(a, b)
            loss = loss + self.contrastive_weight * losses["contrastive"]
        return OmniMaskPreTrainingOutput(
            loss=loss,  # type: ignore[arg-type]
            losses=losses,
            pred=preds,
            mask={k: s.mask for k, s in specs.items()},
            specs=specs,
            grids={k: t.grid for k, t in tokens.items()},
            loss_mask=loss_masks,
        )

    def forward_masking(
        self,
        tokens: dict[str, TokenizedInput],
        noise: dict[str, Tensor],
        masks: dict[str, Tensor],
        decode_masks: dict[str, Tensor],
        mask_seeds: dict[str, Tensor],
        generator: torch.Generator | None = None,
    ) -> dict[str, MaskSpec]:
        """Stage 1: each modality's :class:`MaskSpec` from its strategy (or the given noise, mask,
        seeds), or from the multimodal budget when the batch carries several of its modalities; a
        decoder that predicts only hidden positions gets them as its decoded ones, one with
        ``decode_ratio < 1`` that fraction of them (drawn from ``mask_seeds`` or ``generator``)."""
        specs = self._budget_specs(tokens, generator) if not (noise or masks or decode_masks or mask_seeds) else {}
        for k, t in tokens.items():
            seeds = mask_seeds.get(k)
            where = f"modalities.{k}.decoder"
            if k in specs:
                if getattr(self.decoders[k], "decode_ratio", 1.0) != 1.0:
                    specs[k] = decode_selection(specs[k], self.decoders[k], t.valid, where, generator)
                continue
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
            specs[k] = decode_selection(spec, self.decoders[k], t.valid, where, generator, seeds)
        return specs

    def _budget_specs(
        self, tokens: dict[str, TokenizedInput], generator: torch.Generator | None
    ) -> dict[str, MaskSpec]:
        """Masks drawn from the token budget, for the budget's modalities in this batch (two or more)."""
        keys = [k for k in (self.budget_keys if self.budget is not None else []) if k in tokens]
        if len(keys) < 2:
            return {}
        counts = {k: tokens[k].tokens.shape[1] for k in keys}
        visible, target = draw_budget(self.budget, counts, generator)  # type: ignore[arg-type]
        specs = {}
        for k in keys:
            t = tokens[k]
            b, n = t.tokens.shape[:2]
            noise = uniform_noise((b, n), t.tokens.device, generator)
            if t.valid is not None:  # padding stays visible, as with every per-token strategy
                noise = torch.where(t.valid, noise, torch.full_like(noise, -1.0))
            spec = spec_from_noise(noise, visible[k])
            if target is not None:
                spec = _with_target(spec, target[k], t.valid, uniform_noise((b, n), t.tokens.device, generator))
            specs[k] = spec
        return specs

    def forward_encoder(self, tokens: dict[str, TokenizedInput], enc_specs: dict[str, MaskSpec]) -> Any:
        """Stage 2: the shared encoder over ``[CLS]`` + every modality's visible tokens (with the
        hidden states when a decoder reads an inner block or mixes the blocks' outputs)."""
        visible, pos, valid = self.omnimask.gather_visible(tokens, {k: s.ids_keep for k, s in enc_specs.items()})
        layers_needed = any(
            self.config.modalities[k]["decoder_layer"] or getattr(self.decoders[k], "wants_layers", False)
            for k in enc_specs
        )
        return self.omnimask.encode(visible, output_hidden_states=layers_needed, pos=pos, valid=valid)

    def forward_decoder(self, key: str, enc: Any, enc_spec: MaskSpec, tokenized: TokenizedInput) -> Tensor:
        """Stage 3: modality ``key``'s decoder on its encoded tokens, with the other modalities'
        and the global tokens as context; (B, N, P) or (B, Q, P) at the decoded positions."""
        parts = self._decoder_inputs(key, enc)
        others = [p for j, p in parts.items() if j != key]
        extra: dict[str, Any] = {"valid": tokenized.valid} if tokenized.valid is not None else {}
        if getattr(self.decoders[key], "wants_layers", False):  # CrossMAE's feature fusion
            extra["layers"] = layer_parts(enc, key, self.config.modalities[key]["decoder_layer"])
        return self.decoders[key](
            parts[key],
            enc_spec,
            self._decoder_positions(key, tokenized.grid, tokenized.coords).to(parts[key].dtype),
            global_tokens=enc.global_tokens if enc.global_tokens.shape[1] else None,
            other_tokens=torch.cat(others, dim=1) if others else None,
            grid=tokenized.grid,
            **extra,
        )

    def forward_joint_decoder(
        self, keys: list[str], enc: Any, enc_specs: dict[str, MaskSpec], tokens: dict[str, TokenizedInput]
    ) -> dict[str, Tensor]:
        """Stage 3 for the modalities of ``joint_decoder``: decoded together, one prediction each."""
        parts = self._decoder_inputs(keys[0], enc)
        pos = {k: self._decoder_positions(k, tokens[k].grid, tokens[k].coords) for k in keys}
        valid = {k: tokens[k].valid for k in keys if tokens[k].valid is not None}
        return self.joint_decoder(
            {k: parts[k] for k in keys},
            {k: enc_specs[k] for k in keys},
            pos,
            {k: self.decoders[k] for k in keys},  # type: ignore[misc]
            global_tokens=enc.global_tokens if enc.global_tokens.shape[1] else None,
            valid=valid,
        )

    def forward_alone(
        self, key: str, enc: Any, tokenized: TokenizedInput, spec: MaskSpec, every_token: bool = False
    ) -> Tensor:
        """(B, D): modality ``key``'s visible tokens through the shared blocks without the other
        modalities (with its own LayerNorms where the encoder keeps them), mean-pooled over its real
        tokens: what the contrastive objective compares (CAV-MAE's audio-only and visual-only passes).
        ``every_token``: every token of the modality instead of the visible ones (its own blocks
        run again on all of them)."""
        visible, pos, valid = self.omnimask.gather_visible(
            {key: tokenized}, {} if every_token else {key: spec.ids_keep}
        )
        entered = self.omnimask.enter(visible, pos, valid) if every_token else {key: enc.entered[key]}
        part = self.omnimask.encode_shared(entered, pos=pos, valid=valid).parts[key]
        if key not in valid:
            return part.mean(dim=1)
        w = valid[key].unsqueeze(-1).to(part.dtype)
        return (part * w).sum(1) / w.sum(1).clamp(min=1)

    def forward_loss(
        self, key: str, x: Tensor, tokenized: TokenizedInput, spec: MaskSpec, pred: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Stage 4: the objective on the reconstructed positions only: ``(loss, loss mask)``.
        Padding is never a target; with a decoder selection the target is gathered to it."""
        target = tokenized.target if tokenized.target is not None else self.omnimask.tokenizers[key].patchify(x)
        loss_mask = spec.loss_mask
        if tokenized.valid is not None:  # padding is never a target
            valid = tokenized.valid if spec.ids_decode is None else torch.gather(tokenized.valid, 1, spec.ids_decode)
            loss_mask = loss_mask & valid
        if spec.ids_decode is not None:  # the decoder predicted only the selected positions
            target = gather_tokens(target, spec.ids_decode)
        return self.objectives[key](pred, target, loss_mask), loss_mask

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
