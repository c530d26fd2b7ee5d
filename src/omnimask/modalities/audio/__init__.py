"""The ``audio`` modality: log-mel spectrogram patches (AudioMAE), the Kaldi filterbank front end,
AudioMAE/AST list readers, dataset statistics (``omnimask audio-stats``), augmentations, pictures and
the embedded digit melodies."""

from . import cli, spec  # noqa: F401  (register "audio" and `omnimask audio-stats`)
from .dataset import AudioDataset
from .embedded import AUDIO_MELODIES, embedded_audio_root, render_digit_audio
from .features import (
    NORM_PRESETS,
    AudioFeatureConfig,
    AudioReadError,
    as_waveform,
    downmix,
    kaldi_fbank,
    load_audio,
    mixup_waveforms,
    normalize_fbank,
    pad_or_cut,
    read_audio_file,
    resample_waveform,
    roll_magnitude,
    spec_augment,
)
from .lists import AudioListError, balanced_sample_weights, read_audio_json, read_audio_list, read_label_csv
from .spec import AudioDataConfig
from .stats import AudioStatsError, compute_audio_stats, fbank_stats
from .tokenizer import SpectrogramTokenizer, norm_preset

__all__ = [
    "AUDIO_MELODIES",
    "AudioDataConfig",
    "AudioDataset",
    "AudioFeatureConfig",
    "AudioListError",
    "AudioReadError",
    "AudioStatsError",
    "NORM_PRESETS",
    "SpectrogramTokenizer",
    "as_waveform",
    "balanced_sample_weights",
    "compute_audio_stats",
    "downmix",
    "embedded_audio_root",
    "fbank_stats",
    "kaldi_fbank",
    "load_audio",
    "mixup_waveforms",
    "norm_preset",
    "normalize_fbank",
    "pad_or_cut",
    "read_audio_file",
    "read_audio_json",
    "read_audio_list",
    "read_label_csv",
    "render_digit_audio",
    "resample_waveform",
    "roll_magnitude",
    "spec_augment",
]
