"""Audio modality: log-mel spectrograms cut into non-overlapping patches (AudioMAE).

Axis legend: B batch, C channels (1 for a spectrogram), T frames (time), F mel bins (frequency);
t/f the patch grid (T/p, F/q); p/q the patch's frames and bins. Spectrograms are (B, C, T, F):
time is the picture's height and frequency its width, AudioMAE's layout (its kaldi fbank is
``(frames, bins)``). Tokens are row-major over (t, f) and each patch vector is channel-last
``(p, q, C)``, exactly ``Conv2d(stride=kernel).flatten(2)`` order and AudioMAE's ``patchify``.

Position tables (``pos_embed``):

* ``sincos_2d`` (default): MAE's 2-D sin-cos table on the true (time, frequency) grid (first half
  of the channels the frequency column, second half the time row, MAE's convention).
* ``audiomae``: AudioMAE's own table, which is built on the swapped (F', T') grid, so token
  ``k = t * F' + f`` is coded by ``k % T'`` and ``k // T'`` (see
  :func:`~omnimask.backbone.pos_embed.sincos_2d_audiomae`). Converted AudioMAE checkpoints use it.

Input sizes: the tokenizer is built for ``target_length`` x ``num_mel_bins`` (AudioSet: 1024 x 128,
ESC-50: 512 x 128, Speech Commands: 128 x 128). Other clip lengths that the patch divides are
accepted as they are: both tables are defined for any number of time rows (for ``audiomae`` the
table of that grid is what AudioMAE's own time truncation of the table produces). A different
number of mel bins needs ``interpolate_pos_encoding=True`` (``sincos_2d``: the table is resized
bicubically along frequency; ``audiomae``: the table of the new grid).

Processor preset (``processor`` in the config): AudioSet's fbank statistics with AudioMAE's
normalisation ``(fbank - mean) / (2 * std)``, stored as ``mean = -4.2677393`` and the divisor
``std = 2 * 4.5689974 = 9.1379948`` so that ``x = (raw - mean) / std`` holds as for every other
modality (and ``objective.unnormalize_input`` would invert it). ESC-50 (-6.6268077, 5.358466) and Speech Commands (-6.845978, 5.5654526) are in
:data:`omnimask.data.audio.NORM_PRESETS` (``norm_preset(name)``); ``sample_rate`` (16000) is the
rate every clip is resampled to before the filterbank.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from ..backbone.pos_embed import interpolate_table_2d, sincos_2d_audiomae, sincos_2d_mae
from .base import ModalitySpec, Tokenizer, register_modality
from .patches import Patch2dTokenizer
from .image import _pair

__all__ = ["SpectrogramTokenizer", "POS_EMBEDS", "AudioDataConfig", "norm_preset", "reconstruction_spectrograms"]

#: Accepted ``pos_embed`` values (see the module docstring).
POS_EMBEDS = ("sincos_2d", "audiomae")

def norm_preset(name: str) -> dict:
    """The ``processor`` entries for one of AudioMAE's presets (:data:`omnimask.data.audio.NORM_PRESETS`).

    omnimask's processors store ``x = (raw - mean) / std``; AudioMAE divides by ``2 * std``, so
    the stored ``std`` is twice AudioMAE's constant.
    """
    from ..data.audio import NORM_PRESETS

    if name not in NORM_PRESETS:
        raise ValueError(f"unknown audio normalisation preset {name!r}; choose one of {sorted(NORM_PRESETS)}")
    mean, std = NORM_PRESETS[name]
    return {"mean": [mean], "std": [2.0 * std], "sample_rate": 16000}


class SpectrogramTokenizer(Patch2dTokenizer):
    """(B, C, T, F) spectrograms -> (B, t*f, dim) patch tokens plus fixed sin-cos positions.

    Args:
        dim: encoder width.
        target_length: frames T the model is built for (AudioMAE: 1024 on AudioSet).
        num_mel_bins: mel bins F (AudioMAE: 128).
        patch_size: (p, q) frames x bins per patch (an int means square); must divide T and F.
        in_chans: channels C (1 for a single spectrogram).
        pos_embed: one of :data:`POS_EMBEDS`.
    """

    def __init__(
        self,
        dim: int,
        target_length: int = 1024,
        num_mel_bins: int = 128,
        patch_size: int | tuple[int, int] = 16,
        in_chans: int = 1,
        pos_embed: str = "sincos_2d",
    ) -> None:
        super().__init__()
        self.patch_size = _pair(patch_size, "patch_size")
        for value, name in ((target_length, "target_length"), (num_mel_bins, "num_mel_bins"), (in_chans, "in_chans")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"audio tokenizer: {name} must be a positive int, got {value!r}")
        if pos_embed not in POS_EMBEDS:
            raise ValueError(f"audio tokenizer: pos_embed must be one of {POS_EMBEDS}, got {pos_embed!r}")
        for size, p, what in ((target_length, self.patch_size[0], "target_length"), (num_mel_bins, self.patch_size[1], "num_mel_bins")):
            if size % p:
                raise ValueError(f"audio tokenizer: patch size {self.patch_size} does not divide {what} {size}")
        self.dim, self.target_length, self.num_mel_bins = dim, target_length, num_mel_bins
        self.pos_embed_type = pos_embed
        self.channels = in_chans
        self.patch_dim = self.patch_size[0] * self.patch_size[1] * in_chans
        self.base_grid = (target_length // self.patch_size[0], num_mel_bins // self.patch_size[1])
        self.init_patches(in_chans, dim)

    def grid(self, x: Tensor, interpolate_pos: bool = False) -> tuple[int, int]:
        if x.ndim != 4:
            hint = " (add the channel axis: x.unsqueeze(1))" if x.ndim == 3 else ""
            raise ValueError(f"audio: expected a (batch, channels, frames, mel bins) tensor, got shape {tuple(x.shape)}{hint}")
        if not x.is_floating_point():
            raise ValueError(f"audio: expected a floating-point spectrogram, got {x.dtype}")
        _, c, t, f = x.shape
        if c != self.channels:
            raise ValueError(f"audio: the model expects {self.channels} channel(s), got {c} (input shape {tuple(x.shape)}; spectrograms are (B, C, T, F))")
        p, q = self.patch_size
        if t == 0 or t % p:
            raise ValueError(f"audio: {t} frames cannot be cut into patches of {p} frames; pad or cut the clip to a multiple of {p} (target_length {self.target_length})")
        if f != self.num_mel_bins:
            if not interpolate_pos:
                raise ValueError(
                    f"audio: the model was built for {self.num_mel_bins} mel bins, got {f} (input shape {tuple(x.shape)}; "
                    "spectrograms are (B, C, frames, bins)); pass interpolate_pos_encoding=True to adapt the position table"
                )
            if f % q:
                raise ValueError(f"audio: {f} mel bins are not divisible by the patch width {q}")
        return t // p, f // q

    def positions(self, grid: tuple[int, ...], dim: int) -> Tensor:
        t, f = grid
        if self.pos_embed_type == "audiomae":
            return sincos_2d_audiomae(dim, (t, f))
        base_f = self.base_grid[1]
        return interpolate_table_2d(sincos_2d_mae(dim, (t, base_f)), (t, base_f), (t, f))


def _example_input(tokenizer_cfg: dict, batch_size: int) -> Tensor:
    return torch.randn(
        batch_size, tokenizer_cfg.get("in_chans", 1), tokenizer_cfg.get("target_length", 1024), tokenizer_cfg.get("num_mel_bins", 128)
    )


def _to_grey(spec: Tensor, lo: float, hi: float) -> np.ndarray:
    """(T, F) -> (F, T) uint8 picture: time runs left to right, low frequencies at the bottom."""
    x = ((spec - lo) / max(hi - lo, 1e-6)).clamp(0, 1)
    return (x.T.flip(0).numpy() * 255).round().astype(np.uint8)


@torch.no_grad()
def reconstruction_spectrograms(
    inputs: Tensor, pred: Tensor, mask: Tensor, tokenizer: Tokenizer, objective: Any, processor_cfg: dict, max_rows: int = 4
) -> Any:
    """A PIL picture per batch (first channel): for each sample four panels stacked top to bottom --
    original, masked input (hidden patches at the spectrogram's minimum), reconstruction, and
    reconstruction with the visible patches pasted back. Grey levels are scaled per sample over
    the original's range.

    Args:
        inputs: (B, C, T, F) spectrograms; pred: (B, N, P) predictions in the objective's target
        space; mask: (B, N) bool, True = hidden.
    """
    from PIL import Image

    inputs, pred, mask = inputs[:max_rows].float().cpu(), pred[:max_rows].float().cpu(), mask[:max_rows].cpu()
    grid = tokenizer.grid(inputs, interpolate_pos=True)
    target = tokenizer.patchify(inputs)
    recon = objective.denormalize_pred(pred, target) if hasattr(objective, "denormalize_pred") else pred
    m = mask[..., None].to(target.dtype)
    floor = inputs.flatten(1).min(1).values[:, None, None]
    panels = [
        inputs,
        tokenizer.unpatchify(target * (1 - m) + floor * m, grid),
        tokenizer.unpatchify(recon, grid),
        tokenizer.unpatchify(target * (1 - m) + recon * m, grid),
    ]
    rows = []
    for i in range(inputs.shape[0]):
        lo, hi = float(inputs[i, 0].min()), float(inputs[i, 0].max())
        cells = [_to_grey(p[i, 0], lo, hi) for p in panels]
        sep = np.full((2, cells[0].shape[1]), 255, np.uint8)
        rows.append(np.concatenate([c for cell in cells for c in (cell, sep)], axis=0))
    img = Image.fromarray(np.concatenate(rows, axis=0)[:-2])
    scale = max(1, 256 // img.height)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def _visualize(inputs: Tensor, pred: Tensor, mask: Tensor, tokenizer: Tokenizer, objective: Any, processor_cfg: dict) -> Any:
    return reconstruction_spectrograms(inputs, pred, mask, tokenizer, objective, processor_cfg)


def _features(tokenizer_cfg: dict, processor_cfg: dict) -> Any:
    """The :class:`~omnimask.data.audio.AudioFeatureConfig` a model's config describes."""
    from ..data.audio import AudioFeatureConfig

    (mean,), (std,) = processor_cfg["mean"], processor_cfg["std"]
    return AudioFeatureConfig(
        sample_rate=int(processor_cfg.get("sample_rate", 16000)), num_mel_bins=int(tokenizer_cfg.get("num_mel_bins", 128)),
        target_length=int(tokenizer_cfg.get("target_length", 1024)), mean=float(mean), std=float(std) / 2.0,  # AudioMAE's 2*std
    )


def _build_processor(tokenizer_cfg: dict, processor_cfg: dict) -> Callable[[Any], Tensor]:
    """A file path (wav/flac/...; a video's sound track), or a ``(waveform, sample_rate)`` pair ->
    ``(1, target_length, num_mel_bins)``: mono, resampled, Kaldi fbank, padded/cut, normalised."""
    features = _features(tokenizer_cfg, processor_cfg)

    def process(sample: Any) -> Tensor:
        if isinstance(sample, tuple) and len(sample) == 2:
            return features(sample[0], sample_rate=int(sample[1]))
        if isinstance(sample, (Tensor, np.ndarray)):
            raise ValueError("audio processor: pass a waveform as (waveform, sample_rate); its rate cannot be guessed")
        return features(sample)

    return process


@dataclass
class AudioDataConfig:
    """Where a recipe reads audio and how (``data.<key>`` in a recipe config).

    ``list_file``: AudioMAE's JSON list (``{"data": [{"wav": ..., "labels": "/m/a,/m/b"}]}``, with
    ``label_csv``: ``index,mid,display_name``) or a ``<path> <label>`` text list; ``null`` = the
    embedded digit melodies. ``val_list_file``: the held-out list (required for evaluation with
    your own data). Paths resolve against ``root`` or the list's folder. ``multi_label``: JSON labels
    as multi-hot vectors (AudioSet) or one int (single-label sets; the evaluation needs ints).
    Pretraining augmentation: ``roll_mag`` (AudioMAE pretraining), ``mixup``, ``freqm``/``timem``
    (SpecAugment widths, a fine-tuning augmentation).
    """

    list_file: str | None = None
    val_list_file: str | None = None
    label_csv: str | None = None
    root: str | None = None
    multi_label: bool = False
    roll_mag: bool = False
    mixup: float = 0.0
    freqm: int = 0
    timem: int = 0
    on_error: str = "raise"


def _label_csv(cfg: AudioDataConfig, list_file: Path) -> Path:
    if cfg.label_csv is not None:
        return Path(cfg.label_csv)
    for name in ("labels.csv", "class_labels_indices.csv"):
        if (list_file.parent / name).is_file():
            return list_file.parent / name
    raise ValueError(f"data.audio.label_csv is required for the JSON list {list_file} (index,mid,display_name)")


def _build_dataset(data_cfg: dict, modality_cfg: dict, split: str) -> Any:
    from ..config import from_dict
    from ..data import embedded_audio_root
    from ..data.audio import AudioDataset

    cfg = from_dict(AudioDataConfig, data_cfg, "data.audio")
    if split == "val":
        if cfg.val_list_file is None and cfg.list_file is not None:
            raise ValueError("data.audio.val_list_file is required for a held-out split when data.audio.list_file is your own list")
        list_file = Path(cfg.val_list_file) if cfg.val_list_file else embedded_audio_root() / "val.json"
    else:
        list_file = Path(cfg.list_file) if cfg.list_file else embedded_audio_root() / "train.json"
    features = _features(modality_cfg["tokenizer"], modality_cfg["processor"])
    train = split == "train"
    augment = dict(freqm=cfg.freqm, timem=cfg.timem, mixup=cfg.mixup, roll_mag=cfg.roll_mag) if train else {}
    kwargs: dict[str, Any] = dict(config=features, on_error=cfg.on_error, **augment)  # type: ignore[arg-type]
    if list_file.suffix.lower() == ".json":
        return AudioDataset.from_json(list_file, _label_csv(cfg, list_file), cfg.root, multi_label=cfg.multi_label, **kwargs)
    return AudioDataset.from_list(list_file, cfg.root, **kwargs)


register_modality(
    ModalitySpec(
        name="audio",
        tokenizer=SpectrogramTokenizer,
        example_input=_example_input,
        masking={"name": "random", "ratio": 0.8},
        decoder={
            "name": "local_window", "dim": 512, "depth": 16, "num_heads": 16,
            "window_size": [4, 4], "shift_size": [2, 0], "no_shift": False,
        },
        objective={"name": "mse", "norm": "patch"},
        processor=norm_preset("audioset"),
        build_processor=_build_processor,
        visualize=_visualize,
        build_dataset=_build_dataset,
        description="log-mel spectrograms as non-overlapping time x frequency patches (AudioMAE)",
    )
)
