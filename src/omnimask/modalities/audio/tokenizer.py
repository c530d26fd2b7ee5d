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
* ``cav_mae``: CAV-MAE's table. CAV-MAE transposes the spectrogram to (F, T) and builds MAE's
  table on the (F', T') grid, so a token's first half of the channels encodes its *time* index
  and the second half its frequency index (the halves of ``sincos_2d`` swapped); here it is laid
  out in omnimask's time-major token order (:func:`sincos_2d_cav_mae`). Converted CAV-MAE
  checkpoints use it.

Input sizes: the tokenizer is built for ``target_length`` x ``num_mel_bins`` (AudioSet: 1024 x 128,
ESC-50: 512 x 128, Speech Commands: 128 x 128). Other clip lengths that the patch divides are
accepted as they are: every table is defined for any number of time rows (for ``audiomae`` the
table of that grid is what AudioMAE's own time truncation of the table produces). A different
number of mel bins needs ``interpolate_pos_encoding=True`` (``sincos_2d``: the table is resized
bicubically along frequency; ``audiomae``, ``cav_mae``: the table of the new grid).

Processor preset (``processor`` in the config): AudioSet's fbank statistics with AudioMAE's
normalisation ``(fbank - mean) / (2 * std)``, stored as ``mean = -4.2677393`` and the divisor
``std = 2 * 4.5689974 = 9.1379948`` so that ``x = (raw - mean) / std`` holds as for every other
modality (and ``objective.unnormalize_input`` would invert it). ESC-50 (-6.6268077, 5.358466) and Speech Commands (-6.845978, 5.5654526) are in
:data:`omnimask.data.audio.NORM_PRESETS` (``norm_preset(name)``); ``sample_rate`` (16000) is the
rate every clip is resampled to before the filterbank.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor

from ...backbone.pos_embed import interpolate_table_2d, sincos_2d_audiomae, sincos_2d_mae
from ..image.tokenizer import _pair, as_model_dtype
from ..patches import Patch2dTokenizer

__all__ = ["SpectrogramTokenizer", "POS_EMBEDS", "norm_preset", "sincos_2d_cav_mae"]

#: Accepted ``pos_embed`` values (see the module docstring).
POS_EMBEDS = ("sincos_2d", "audiomae", "cav_mae")


def sincos_2d_cav_mae(dim: int, grid: tuple[int, int]) -> Tensor:
    """CAV-MAE's audio table for a (time, frequency) token grid, tokens row-major over (t, f).

    CAV-MAE's tokens run frequency-major over its (F', T') grid and its table is MAE's for that
    grid: token (f, t) gets ``[code(t) | code(f)]`` (MAE puts the column, here time, first). This
    is that table with its rows reordered to omnimask's time-major tokens, so token ``t * F' + f``
    gets ``[code(t) | code(f)]``.

    Returns:
        (T' * F', dim) float32.
    """
    time, freq = grid
    return rearrange(sincos_2d_mae(dim, (freq, time)), "(f t) d -> (t f) d", f=freq, t=time)


def norm_preset(name: str) -> dict:
    """The ``processor`` entries for one of AudioMAE's presets (:data:`omnimask.data.audio.NORM_PRESETS`).

    omnimask's processors store ``x = (raw - mean) / std``; AudioMAE divides by ``2 * std``, so
    the stored ``std`` is twice AudioMAE's constant.
    """
    from .features import NORM_PRESETS

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
        for size, p, what in (
            (target_length, self.patch_size[0], "target_length"),
            (num_mel_bins, self.patch_size[1], "num_mel_bins"),
        ):
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
            raise ValueError(
                f"audio: expected a (batch, channels, frames, mel bins) tensor, got shape {tuple(x.shape)}{hint}"
            )
        if not x.is_floating_point():
            raise ValueError(f"audio: expected a floating-point spectrogram, got {x.dtype}")
        _, c, t, f = x.shape
        if c != self.channels:
            raise ValueError(
                f"audio: the model expects {self.channels} channel(s), got {c} (input shape {tuple(x.shape)}; spectrograms are (B, C, T, F))"
            )
        p, q = self.patch_size
        if t == 0 or t % p:
            raise ValueError(
                f"audio: {t} frames cannot be cut into patches of {p} frames; pad or cut the clip to a multiple of {p} (target_length {self.target_length})"
            )
        if f != self.num_mel_bins:
            if not interpolate_pos:
                raise ValueError(
                    f"audio: the model was built for {self.num_mel_bins} mel bins, got {f} (input shape {tuple(x.shape)}; "
                    "spectrograms are (B, C, frames, bins)); pass interpolate_pos_encoding=True to adapt the position table"
                )
            if f % q:
                raise ValueError(f"audio: {f} mel bins are not divisible by the patch width {q}")
        return t // p, f // q

    def forward(self, x: Tensor, interpolate_pos: bool = False) -> tuple[Tensor, tuple[int, int]]:
        """Float spectrograms of any precision are cast to the model's dtype; integer ones are an error."""
        return super().forward(as_model_dtype(x, self.proj.weight.dtype), interpolate_pos)  # type: ignore[return-value]

    def positions(self, grid: tuple[int, ...], dim: int) -> Tensor:
        t, f = grid
        if self.pos_embed_type == "audiomae":
            return sincos_2d_audiomae(dim, (t, f))
        if self.pos_embed_type == "cav_mae":
            return sincos_2d_cav_mae(dim, (t, f))
        base_f = self.base_grid[1]
        return interpolate_table_2d(sincos_2d_mae(dim, (t, base_f)), (t, base_f), (t, f))
