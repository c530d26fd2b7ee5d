"""``OmniMaskConfig``: the model's ``config.json``.

It is a ``transformers.PreTrainedConfig`` (model_type ``"omnimask"``) so that ``AutoConfig`` and
``AutoModel`` find omnimask checkpoints after ``import omnimask``. The config is validated and
completed on construction: every modality entry is filled with its registered defaults, so a saved
``config.json`` fully describes the model, its masking, objectives and preprocessing.

Layout::

    {"encoder": {"dim": 768, "depth": 12, ...},
     "modalities": {"image": {"type": "image",
                              "tokenizer": {"image_size": [224, 224], "patch_size": [16, 16], "in_chans": 3},
                              "masking": {"name": "random", "ratio": 0.75},
                              "decoder": {"name": "transformer", "dim": 512, ...},
                              "objective": {"name": "mse", "norm": "patch"},
                              "loss_weight": 1.0,
                              "processor": {"mean": [...], "std": [...]}}}}

A modality's key is its name in batches; ``type`` names the registered modality and defaults to
the key (two image-like inputs, e.g. ``rgb`` and ``depth``, can share ``type: image``).
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from transformers import PreTrainedConfig

from .backbone.encoder import EncoderConfig
from .decoders import DECODERS
from .decoders.joint import JointDecoderConfig
from .masking import MASKING
from .masking.budget import BudgetConfig, RatioSchedule
from .modalities import MODALITIES
from .objectives import OBJECTIVES
from .registry import ConfigError, check_keys
from .run_config import from_dict, to_dict
from .version import __version__

__all__ = ["OmniMaskConfig"]

_MODALITY_KEYS = (
    "type",
    "tokenizer",
    "masking",
    "decoder",
    "objective",
    "loss_weight",
    "processor",
    "encoder_mask",
    "decoder_layer",
    "mask_schedule",
)
_ENCODER_MASKS = ("drop", "replace")
# Values the model supplies to components; users never set them.
_INJECTED = {"decoder": ("in_dim", "out_dim"), "objective": ("channels", "input_mean", "input_std")}


def _component(section: str, registry: Any, given: dict | None, default: dict, where: str) -> dict:
    """Merge a user component config over the modality default (defaults only apply to the same name)."""
    given = dict(given or {})
    name = given.get("name", default.get("name"))
    base = dict(default) if name == default.get("name") else {"name": name}
    base.update(given)
    kwargs = {k: v for k, v in base.items() if k != "name"}
    registry.check(name, kwargs, where, injected=_INJECTED.get(section, ()))
    return {"name": name, **kwargs}


def _tokenizer_kwargs(tokenizer_cls: type, given: dict | None, where: str) -> dict:
    params = {
        p.name: p.default
        for p in inspect.signature(tokenizer_cls.__init__).parameters.values()
        if p.name not in ("self", "dim") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    given = dict(given or {})
    check_keys(given, params, where)
    missing = [k for k, v in params.items() if v is inspect.Parameter.empty and k not in given]
    if missing:
        raise ConfigError(f"{where} is missing required key(s) {missing}")
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in {**params, **given}.items()}
    return out


def _check_masking(masking: dict, where: str) -> None:
    """Build the strategy once so a bad value fails here, named at its key."""
    MASKING.build(masking["name"], {k: v for k, v in masking.items() if k != "name"}, where)


def _schedule(given: Any, where: str) -> dict:
    """Validate a ``mask_schedule``; its value errors (``mask_schedule.<key> ...``) get the full key."""
    if not isinstance(given, dict):
        raise ConfigError(f"{where} must be a mapping {{shape, start, end, ramp}}, got {given!r}")
    try:
        return to_dict(from_dict(RatioSchedule, given, where))
    except ConfigError as err:
        text = str(err)
        raise ConfigError(text if text.startswith(where) else text.replace("mask_schedule.", f"{where}.", 1)) from None


def normalize_modality(key: str, cfg: dict | None) -> dict:
    """Validate one modality entry and fill in the registered defaults."""
    cfg = dict(cfg or {})
    where = f"modalities.{key}"
    check_keys(cfg, _MODALITY_KEYS, where)
    mtype = cfg.get("type", key)
    if mtype not in MODALITIES:
        raise ConfigError(
            f"{where}: unknown modality type {mtype!r}; registered modalities: {MODALITIES.names()} "
            "(set 'type' when the key is not a modality name)"
        )
    spec = MODALITIES.get(mtype)
    weight = cfg.get("loss_weight", 1.0)
    if not isinstance(weight, (int, float)) or weight < 0:
        raise ConfigError(f"{where}.loss_weight must be a non-negative number, got {weight!r}")
    processor = {**copy.deepcopy(spec.processor), **(cfg.get("processor") or {})}
    encoder_mask = cfg.get("encoder_mask", spec.encoder_mask)
    if encoder_mask not in _ENCODER_MASKS:
        raise ConfigError(f"{where}.encoder_mask must be one of {_ENCODER_MASKS}, got {encoder_mask!r}")
    masking = _component("masking", MASKING, cfg.get("masking"), spec.masking, f"{where}.masking")
    _check_masking(masking, f"{where}.masking")
    layer = cfg.get("decoder_layer")
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int) or layer < 1):
        raise ConfigError(
            f"{where}.decoder_layer must be null (the encoder's output) or a block number >= 1, got {layer!r}"
        )
    return {
        "type": mtype,
        "tokenizer": _tokenizer_kwargs(spec.tokenizer, cfg.get("tokenizer"), f"{where}.tokenizer"),
        "masking": masking,
        "decoder": _component("decoder", DECODERS, cfg.get("decoder"), spec.decoder, f"{where}.decoder"),
        "objective": _component("objective", OBJECTIVES, cfg.get("objective"), spec.objective, f"{where}.objective"),
        "loss_weight": float(weight),
        "processor": processor,
        "encoder_mask": encoder_mask,
        "decoder_layer": layer,
        # Stored only when set, so configs without one stay as they were.
        **(
            {"mask_schedule": _schedule(cfg["mask_schedule"], f"{where}.mask_schedule")}
            if cfg.get("mask_schedule")
            else {}
        ),
    }


def _joint_decoder(given: Any, mods: dict) -> dict:
    """Validate ``joint_decoder`` and give each of its modalities the ``joint`` head as decoder."""
    if not isinstance(given, dict):
        raise ConfigError(f"joint_decoder must be a mapping, got {given!r}")
    cfg = to_dict(from_dict(JointDecoderConfig, given, "joint_decoder"))
    keys = cfg["modalities"]
    stray = [k for k in keys if k not in mods]
    if not keys or stray or len(set(keys)) != len(keys):
        raise ConfigError(
            f"joint_decoder.modalities must name distinct modalities of the model {list(mods)}, got {keys!r}"
        )
    for k in keys:
        entry = dict(mods[k] or {})
        dec = dict(entry.get("decoder") or {})
        if dec.get("name", "joint") != "joint":
            raise ConfigError(
                f"modalities.{k}.decoder: {k} is decoded by joint_decoder; remove its decoder section "
                f"(or name it 'joint'), got {dec['name']!r}"
            )
        entry["decoder"] = {"name": "joint", "dim": cfg["dim"], "modality_embed": cfg["modality_embed"], **dec}
        mods[k] = entry
    return cfg


def _contrastive(given: Any, keys: list[str]) -> dict:
    """Validate ``contrastive``: a pairwise objective, the two modalities it compares, its weight."""
    if not isinstance(given, dict):
        raise ConfigError(f"contrastive must be a mapping, got {given!r}")
    cfg = dict(given)
    name, pair, weight = cfg.pop("name", "infonce"), cfg.pop("modalities", None), cfg.pop("weight", 1.0)
    tokens = cfg.pop("tokens", "visible")
    if tokens not in ("visible", "all"):
        raise ConfigError(f"contrastive.tokens must be visible (CAV-MAE) or all, got {tokens!r}")
    if not isinstance(pair, list) or len(pair) != 2 or pair[0] == pair[1] or any(k not in keys for k in pair):
        raise ConfigError(
            f"contrastive.modalities must name two different modalities of the model {keys}, got {pair!r}"
        )
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise ConfigError(f"contrastive.weight must be a non-negative number, got {weight!r}")
    OBJECTIVES.check(name, cfg, "contrastive")
    if not getattr(OBJECTIVES.get(name), "pairwise", False):
        raise ConfigError(f"contrastive.name: {name!r} is a reconstruction objective; a contrastive one compares two "
                          "modalities (e.g. infonce)")  # fmt: skip
    return {"name": name, "modalities": list(pair), "weight": float(weight), "tokens": tokens, **cfg}


class OmniMaskConfig(PreTrainedConfig):
    """Configuration of :class:`~omnimask.OmniMaskForPreTraining` and :class:`~omnimask.OmniMaskModel`.

    Args:
        encoder: shared encoder shape, see :class:`~omnimask.backbone.EncoderConfig`.
        modalities: ``{key: modality config}``; defaults to a single ``image`` modality.
        budget: optional multimodal token budget (:class:`~omnimask.masking.budget.BudgetConfig`):
            batches carrying several of its modalities split a fixed number of visible (and
            target) tokens across them by a Dirichlet draw instead of each modality's ratio.
        joint_decoder: optional one decoder over several modalities together (CAV-MAE):
            ``{modalities: [...], dim, depth, num_heads, ...}`` (:class:`~omnimask.decoders.joint.
            JointDecoderConfig`); those modalities' ``decoder`` becomes their ``joint`` head.
        contrastive: optional contrastive objective between two modalities of the same samples,
            added to the reconstruction losses: ``{name: infonce, modalities: [a, b], weight, ...}``
            (the rest are the objective's options, e.g. ``temperature``, ``symmetric``). ``tokens``:
            pool each modality's ``visible`` tokens (CAV-MAE, no extra encoder input) or ``all`` of
            them (a second, unmasked pass of each modality alone: more compute, a cleaner signal).
    """

    model_type = "omnimask"

    def __init__(
        self,
        encoder: dict | None = None,
        modalities: dict | None = None,
        omnimask_version: str | None = None,
        budget: dict | None = None,
        joint_decoder: dict | None = None,
        contrastive: dict | None = None,
        **kwargs: Any,
    ) -> None:
        enc = EncoderConfig.from_dict(dict(encoder or {}))
        mods = {"image": {}} if modalities is None else dict(modalities)
        if not mods:
            raise ConfigError("modalities: at least one modality is required")
        for key in mods:
            if not isinstance(key, str) or not key.isidentifier() or key != key.lower():
                raise ConfigError(f"modalities: key {key!r} must be a lower-case identifier")
        # Stored only when set, so configs without them stay as they were.
        if joint_decoder is not None:
            self.joint_decoder = _joint_decoder(joint_decoder, mods)
        if contrastive is not None:
            self.contrastive = _contrastive(contrastive, list(mods))
        self.encoder = enc.to_dict()
        self.modalities = {k: normalize_modality(k, v) for k, v in mods.items()}
        self.omnimask_version = omnimask_version or __version__
        if budget is not None:  # stored only when set, so configs without one stay as they were
            b = from_dict(BudgetConfig, budget, "budget")
            stray = [m for m in b.modalities or [] if m not in self.modalities]
            if stray:
                raise ConfigError(f"budget.modalities names {stray}; the model has {list(self.modalities)}")
            self.budget = to_dict(b)
        super().__init__(**kwargs)

    @property
    def budget_config(self) -> BudgetConfig | None:
        """The multimodal budget, if the model has one."""
        b = getattr(self, "budget", None)
        return None if b is None else from_dict(BudgetConfig, b, "budget")

    @property
    def encoder_config(self) -> EncoderConfig:
        return EncoderConfig(**self.encoder)

    @property
    def use_modality_embed(self) -> bool:
        flag = self.encoder["modality_embed"]
        return len(self.modalities) > 1 if flag == "auto" else bool(flag)
