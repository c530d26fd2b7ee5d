"""Audio data path: decoding and resampling, Kaldi fbank features, normalisation, augmentations,
list readers, balanced weights, the dataset and the embedded audio part.

Small audio files are written with soundfile (and PyAV for a video's sound track) under pytest's
tmp_path; the embedded audio part is built once per module in its own temporary folder.
"""

from __future__ import annotations

import json
import math
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
import torchaudio.compliance.kaldi as kaldi
from torch.utils.data import DataLoader, WeightedRandomSampler

from omnimask.data import embedded, ensure_embedded_dataset, verify_part
from omnimask.data.embedded import load_digits_source, stratified_split
from omnimask.modalities.audio import (
    NORM_PRESETS,
    AudioDataset,
    AudioFeatureConfig,
    AudioListError,
    AudioReadError,
    balanced_sample_weights,
    compute_audio_stats,
    embedded_audio_root,
    kaldi_fbank,
    load_audio,
    mixup_waveforms,
    normalize_fbank,
    pad_or_cut,
    read_audio_file,
    read_audio_json,
    read_audio_list,
    read_label_csv,
    resample_waveform,
    roll_magnitude,
    spec_augment,
)
from omnimask.modalities.audio.embedded import AUDIO_MELODIES, render_digit_audio
from omnimask.training import SeededDataset

LOG_EPS = math.log(torch.finfo(torch.float32).eps)  # Kaldi's energy floor: every bin of silence


@pytest.fixture(autouse=True)
def _one_thread():
    """Per-clip audio ops are tiny; with 2 intra-op threads on a busy 2-core machine they wait at
    OpenMP barriers and ran 10 to 100 times slower in these tests. (DataLoader workers use 1 too.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sine(freq: float, rate: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def _wav(path: Path, x: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> str:
    sf.write(path, x, rate, subtype=subtype)
    return str(path)


def _peak_hz(x: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.reshape(-1).numpy()))
    return float(np.argmax(spectrum) * rate / x.numel())


def _reference_fbank(x: torch.Tensor, rate: int = 16000) -> torch.Tensor:
    """AudioMAE's call, written out."""
    return kaldi.fbank(x - x.mean(), htk_compat=True, sample_frequency=rate, use_energy=False, window_type="hanning",
                       num_mel_bins=128, dither=0.0, frame_shift=10, frame_length=25)  # fmt: skip


# ---------------------------------------------------------------- features


def test_fbank_equals_torchaudio_kaldi_with_audiomae_settings() -> None:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(_sine(1000, 16000) + 0.01 * rng.standard_normal(16000).astype(np.float32) + 0.2)[None]
    ours = kaldi_fbank(x, 16000)
    assert ours.shape == (98, 128) and ours.dtype == torch.float32
    assert torch.equal(ours, _reference_fbank(x))  # the DC offset (0.2) is removed first, as AudioMAE
    assert torch.equal(kaldi_fbank(x[0], 16000), ours)  # (T,) works too


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_sine_peaks_in_its_mel_bin(freq: float) -> None:
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)  # noqa: E731 - HTK mel, as Kaldi
    low, high = mel(20.0), mel(8000.0)
    centres = [low + (k + 1) * (high - low) / 129 for k in range(128)]
    expected = min(range(128), key=lambda k: abs(centres[k] - mel(freq)))
    fb = kaldi_fbank(torch.from_numpy(_sine(freq, 16000)), 16000)
    assert abs(int(fb.mean(0).argmax()) - expected) <= 1


def test_multichannel_fbank_is_refused() -> None:
    with pytest.raises(ValueError, match="downmix first"):
        kaldi_fbank(torch.zeros(2, 1600), 16000)


def test_silence_is_finite_and_short_clips_get_one_window() -> None:
    silent = kaldi_fbank(torch.zeros(1, 16000), 16000)
    assert silent.shape == (98, 128) and torch.all(silent == LOG_EPS)
    short = torch.randn(1, 100)
    fb = kaldi_fbank(short, 16000)  # 100 samples < one 400-sample window: zero-padded to one window
    assert fb.shape == (1, 128)
    padded = torch.nn.functional.pad(short - short.mean(), (0, 300))
    assert torch.equal(fb, _reference_fbank(padded))
    with pytest.raises(ValueError, match="empty"):
        kaldi_fbank(torch.zeros(1, 0), 16000)


def test_pad_or_cut_and_normalise() -> None:
    fb = torch.randn(98, 128)
    padded = pad_or_cut(fb, 128)
    assert padded.shape == (128, 128) and torch.equal(padded[:98], fb) and torch.all(padded[98:] == 0)
    assert torch.equal(pad_or_cut(fb, 64), fb[:64]) and torch.equal(pad_or_cut(fb, 98), fb)
    assert NORM_PRESETS == {"audioset": (-4.2677393, 4.5689974), "esc50": (-6.6268077, 5.358466),
                            "speechcommands": (-6.845978, 5.5654526)}  # fmt: skip
    mean, std = NORM_PRESETS["esc50"]
    assert torch.allclose(normalize_fbank(fb, mean, std), (fb + 6.6268077) / (2 * 5.358466))
    cfg = AudioFeatureConfig.preset("esc50", sample_rate=22050)
    assert (cfg.mean, cfg.std, cfg.target_length, cfg.sample_rate) == (mean, std, 512, 22050)
    assert AudioFeatureConfig.preset("speechcommands").target_length == 128
    with pytest.raises(ValueError, match="presets: \\['audioset', 'esc50', 'speechcommands'\\]"):
        AudioFeatureConfig.preset("librispeech")
    # The processor: padding is 0 in the log-mel domain, i.e. (0 - mean) / (2 std) after normalising.
    x = AudioFeatureConfig(target_length=128)(_sine(1000, 8000), sample_rate=8000)
    assert x.shape == (1, 128, 128)
    assert torch.allclose(x[0, 98:], torch.full((30, 128), 4.2677393 / (2 * 4.5689974)))


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_keeps_the_frequency(tmp_path: Path, rate: int) -> None:
    w = load_audio(_wav(tmp_path / "s.wav", _sine(1000, rate), rate), 16000)
    assert w.shape == (1, 16000) and w.dtype == torch.float32
    assert _peak_hz(w, 16000) == 1000.0
    assert abs(float(w[0, 1000:-1000].abs().max()) - 0.5) < 0.01  # amplitude kept (away from the edges)
    up = resample_waveform(w, 16000, 48000)
    assert up.shape == (1, 48000) and _peak_hz(up, 48000) == 1000.0
    assert resample_waveform(w, 16000, 16000) is w


@pytest.mark.parametrize(
    "ext, subtype, tol",
    [("wav", "PCM_U8", 1 / 64), ("wav", "PCM_16", 1e-4), ("wav", "PCM_24", 1e-6), ("wav", "FLOAT", 0.0),
     ("flac", "PCM_S8", 1 / 64), ("flac", "PCM_16", 1e-4), ("flac", "PCM_24", 1e-6)],
)  # fmt: skip
def test_bit_depths_and_formats(tmp_path: Path, ext: str, subtype: str, tol: float) -> None:
    x = _sine(440, 11025, 0.5, amp=0.8)
    w, rate = read_audio_file(_wav(tmp_path / f"a.{ext}", x, 11025, subtype))
    assert rate == 11025 and w.shape == (1, len(x)) and w.dtype == torch.float32
    assert float((w[0] - torch.from_numpy(x)).abs().max()) <= tol


def test_downmix_averages_channels(tmp_path: Path) -> None:
    x = np.stack([_sine(500, 16000, amp=0.6), _sine(1500, 16000, amp=0.3), np.full(16000, 0.25, np.float32)], 1)
    path = _wav(tmp_path / "three.wav", x, subtype="FLOAT")
    every = load_audio(path, 16000, mono=False)
    assert every.shape == (3, 16000) and torch.equal(every, torch.from_numpy(x.T.copy()))
    mono = load_audio(path, 16000)
    assert mono.shape == (1, 16000) and torch.allclose(mono[0], torch.from_numpy(x.mean(1)), atol=1e-7)


def _write_av(path: Path, channels: list[np.ndarray] | None, rate: int = 22050) -> str:
    """An mp4 with a tiny mpeg4 video stream and (if ``channels``) an AAC track of those channels."""
    import av

    with av.open(str(path), "w") as c:
        vs = c.add_stream("mpeg4", rate=8)
        vs.width = vs.height = 16
        vs.pix_fmt = "yuv420p"
        a = c.add_stream("aac", rate=rate) if channels else None  # every stream before the first packet
        if a is not None:
            a.layout = "stereo" if len(channels) == 2 else "mono"
        for t in range(8):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 8)
            c.mux(vs.encode(frame))
        c.mux(vs.encode())
        if a is not None:
            x = np.stack(channels).astype(np.float32)
            for s in range(0, x.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, s : s + 1024]), format="fltp",
                                                   layout=a.layout.name)  # fmt: skip
                frame.sample_rate, frame.pts, frame.time_base = rate, s, Fraction(1, rate)
                c.mux(a.encode(frame))
            c.mux(a.encode())
    return str(path)


def test_sound_track_of_a_video(tmp_path: Path) -> None:
    left, right = _sine(1000, 22050, amp=0.5), _sine(500, 22050, amp=0.5)
    stereo = _write_av(tmp_path / "stereo.mp4", [left, right])
    both = load_audio(stereo, 22050, mono=False)
    assert both.shape[0] == 2 and torch.isfinite(both).all()  # decord 0.6 would give NaNs in channel 1
    assert _peak_hz(both[0], 22050) == pytest.approx(1000, abs=2)
    assert _peak_hz(both[1], 22050) == pytest.approx(500, abs=2)
    mono = load_audio(stereo, 16000)
    assert mono.shape == (1, math.ceil(both.shape[1] * 16000 / 22050))
    assert torch.allclose(mono, resample_waveform(both.mean(0, keepdim=True), 22050, 16000))  # an average
    assert float(mono.abs().max()) < 0.6  # FFmpeg's (L + R) / sqrt(2) would reach ~0.7
    single = load_audio(_write_av(tmp_path / "mono.mp4", [left]), 16000)
    assert _peak_hz(single, 16000) == pytest.approx(1000, abs=2)
    silent_film = _write_av(tmp_path / "no_sound.mp4", None)
    with pytest.raises(AudioReadError, match=f"{silent_film}: it has no audio stream"):
        load_audio(silent_film, 16000)


def _bad_files(folder: Path) -> dict[str, tuple[str, str]]:
    """name -> (path, expected message fragment)."""
    (folder / "empty.wav").write_bytes(b"")
    (folder / "garbage.wav").write_bytes(b"not a riff header" * 8)
    (folder / "garbage.mp4").write_bytes(b"not a container" * 8)
    nan = np.zeros(800, np.float32)
    nan[123] = np.nan
    inf = np.zeros(800, np.float32)
    inf[7] = np.inf
    return {
        "empty": (str(folder / "empty.wav"), "the file is empty (0 bytes)"),
        "zero-length": (_wav(folder / "zero.wav", np.zeros(0, np.float32)), "no audio samples (zero length)"),
        "nan": (_wav(folder / "nan.wav", nan, subtype="FLOAT"), "1 NaN/inf samples (first at sample 123 of channel 0)"),
        "inf": (_wav(folder / "inf.wav", inf, subtype="FLOAT"), "1 NaN/inf samples (first at sample 7"),
        "garbage": (str(folder / "garbage.wav"), "soundfile cannot decode it"),
        "garbage-mp4": (str(folder / "garbage.mp4"), "PyAV cannot decode it"),
        "missing": (str(folder / "missing.flac"), "the file does not exist"),
    }


@pytest.mark.parametrize("name", ["empty", "zero-length", "nan", "inf", "garbage", "garbage-mp4", "missing"])
def test_bad_files_are_rejected_naming_file_and_problem(tmp_path: Path, name: str) -> None:
    path, problem = _bad_files(tmp_path)[name]
    with pytest.raises(AudioReadError) as err:
        load_audio(path, 16000)
    assert str(err.value).startswith(f"cannot read audio {path}: ") and problem in str(err.value)


def test_silent_file_is_valid(tmp_path: Path) -> None:
    cfg = AudioFeatureConfig(target_length=100)
    x = cfg(_wav(tmp_path / "silence.wav", np.zeros(16000, np.float32)))
    assert torch.isfinite(x).all()
    assert torch.allclose(x[0, :98], torch.full((98, 128), (LOG_EPS - cfg.mean) / (2 * cfg.std)))


# ---------------------------------------------------------------- list files


def _labels_csv(path: Path) -> Path:
    path.write_text('index,mid,display_name\n0,/m/a,"Speech, child"\n1,/m/b,Music\n2,/m/c,Dog\n')
    return path


def test_read_audio_json_multi_and_single_label(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    a, b = (_wav(tmp_path / "clips" / n, np.zeros(160, np.float32)) for n in ("a.wav", "b c.wav"))
    csv_file = _labels_csv(tmp_path / "labels.csv")
    assert read_label_csv(csv_file) == {"/m/a": 0, "/m/b": 1, "/m/c": 2}
    lists = tmp_path / "lists"
    lists.mkdir()
    doc = {"data": [{"wav": "clips/a.wav", "labels": "/m/a,/m/c"}, {"wav": b, "labels": "/m/b", "extra": 1}]}
    (lists / "train.json").write_text(json.dumps(doc))
    items = read_audio_json(lists / "train.json", csv_file, root=tmp_path)  # relative paths against root=
    assert [p for p, _ in items] == [a, b]
    assert torch.equal(items[0][1], torch.tensor([1.0, 0.0, 1.0]))
    assert torch.equal(items[1][1], torch.tensor([0.0, 1.0, 0.0]))
    (tmp_path / "single.json").write_text(json.dumps({"data": [{"wav": "clips/b c.wav", "labels": "/m/c"}]}))
    single = read_audio_json(tmp_path / "single.json", csv_file, multi_label=False)  # against the JSON's folder
    assert single == [(b, 2)]


@pytest.mark.parametrize(
    "data, problem",
    [
        ([{"wav": "a.wav", "labels": "/m/a"}, {"labels": "/m/b"}], "data[1] has no 'wav' key (it has: ['labels'])"),
        ([{"wav": "a.wav"}], "data[0] (a.wav) has no 'labels' key"),
        ([{"wav": "a.wav", "labels": "/m/a,/m/zzz"}], "data[0] (a.wav): label(s) ['/m/zzz'] are not in"),
        ([{"wav": "a.wav", "labels": ""}], "data[0] (a.wav): empty 'labels'"),
        (
            [{"wav": "a.wav", "labels": "/m/a"}, {"wav": "gone.wav", "labels": "/m/a"}],
            "data[1]: audio file does not exist",
        ),
        ([], "the 'data' list is empty"),
    ],
)
def test_read_audio_json_errors_name_the_entry(tmp_path: Path, data: list, problem: str) -> None:
    _wav(tmp_path / "a.wav", np.zeros(160, np.float32))
    js = tmp_path / "l.json"
    js.write_text(json.dumps({"data": data}))
    with pytest.raises(AudioListError) as err:
        read_audio_json(js, _labels_csv(tmp_path / "labels.csv"))
    assert str(err.value).startswith(f"{js}: ") and problem in str(err.value)


def test_read_audio_json_malformed_documents(tmp_path: Path) -> None:
    csv_file = _labels_csv(tmp_path / "labels.csv")
    _wav(tmp_path / "a.wav", np.zeros(160, np.float32))
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [\n {"wav": "a.wav",}\n]}')
    with pytest.raises(AudioListError, match=f"{bad}:2: not valid JSON"):
        read_audio_json(bad, csv_file)
    bad.write_text('[{"wav": "a.wav"}]')
    with pytest.raises(AudioListError, match="at the top level"):
        read_audio_json(bad, csv_file)
    bad.write_text(json.dumps({"data": [{"wav": "a.wav", "labels": "/m/a,/m/b"}]}))
    with pytest.raises(AudioListError, match="data\\[0\\] \\(a.wav\\): 2 labels .* needs exactly one"):
        read_audio_json(bad, csv_file, multi_label=False)
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        read_audio_json(tmp_path / "nowhere.json", csv_file)


@pytest.mark.parametrize(
    "text, where, problem",
    [
        ("idx,mid,display_name\n0,/m/a,A\n", ":1: ", "missing column(s) ['index']"),
        ("index,mid,display_name\n0,/m/a,A\nx,/m/b,B\n", ":3: ", "the index 'x' is not an integer"),
        ("index,mid,display_name\n0,/m/a,A\n1,/m/a,B\n", ":3: ", "repeated mid '/m/a' (first with index 0)"),
        ("index,mid,display_name\n0,/m/a,A\n0,/m/b,B\n", ":3: ", "repeated index 0 (first for mid '/m/a')"),
        ("index,mid,display_name\n", "", "has no rows"),
    ],
)
def test_label_csv_errors(tmp_path: Path, text: str, where: str, problem: str) -> None:
    f = tmp_path / "labels.csv"
    f.write_text(text)
    with pytest.raises(AudioListError) as err:
        read_label_csv(f)
    assert str(err.value).startswith(f"{f}{where}") and problem in str(err.value)


def test_read_audio_list(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    a = _wav(tmp_path / "sub" / "with space.wav", np.zeros(160, np.float32))
    lst = tmp_path / "train.txt"
    lst.write_text("# comment\n\n  sub/with space.wav   7  \n")
    assert read_audio_list(lst) == [(a, 7)]
    for text, line_no, problem in [("sub/with space.wav 1\nb.wav\n", 2, "no label"),
                                   ("sub/with space.wav cat\n", 1, "'cat' is not an integer"),
                                   ("\nmissing.wav 1\n", 2, "does not exist")]:  # fmt: skip
        lst.write_text(text)
        with pytest.raises(AudioListError) as err:
            read_audio_list(lst)
        assert str(err.value).startswith(f"{lst}:{line_no}: ") and problem in str(err.value)


# ---------------------------------------------------------------- balanced weights and augmentation


def test_balanced_sample_weights_hand_computed() -> None:
    multi_hot = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])]
    w = balanced_sample_weights(multi_hot)  # counts: class 0 -> 2, class 1 -> 1, class 2 -> 1
    expected = torch.tensor([1000 / 2.01, 1000 / 2.01 + 1000 / 1.01, 1000 / 1.01], dtype=torch.float64)
    assert w.dtype == torch.float64 and torch.allclose(w, expected)
    ints = balanced_sample_weights([0, 0, 0, 1])
    assert torch.allclose(ints, torch.tensor([1000 / 3.01] * 3 + [1000 / 1.01], dtype=torch.float64))
    assert balanced_sample_weights(torch.zeros(2, 4))[0] == 0  # no label: never drawn
    drawn = list(WeightedRandomSampler(ints, 4000, generator=torch.Generator().manual_seed(0)))
    assert 0.4 < drawn.count(3) / 4000 < 0.6  # the rare class is drawn about as often as the common one


@pytest.mark.parametrize("seed", range(5))
def test_spec_augment_matches_torchaudio(seed: int) -> None:
    fb = torch.randn(300, 128)
    torch.manual_seed(seed)
    freq, time = torchaudio.transforms.FrequencyMasking(48), torchaudio.transforms.TimeMasking(192)
    reference = time(freq(fb.t().unsqueeze(0))).squeeze(0).t()  # AudioMAE's (1, F, T) round trip
    torch.manual_seed(seed)
    assert torch.equal(spec_augment(fb, 48, 192), reference)


def test_spec_augment_stays_within_limits() -> None:
    fb = torch.rand(200, 64) + 1.0  # never 0, so the mask is exactly the zeros
    gen = torch.Generator().manual_seed(0)
    widths = set()
    for _ in range(100):
        out = spec_augment(fb, 20, 50, generator=gen)
        masked = out == 0
        cols, rows = masked.all(0), masked.all(1)
        assert torch.equal(masked, cols[None, :] | rows[:, None])  # whole columns/rows only
        assert torch.equal(out[~masked], fb[~masked])
        for band, limit in ((cols, 20), (rows, 50)):
            idx = band.nonzero().flatten()
            assert len(idx) < limit and (len(idx) == 0 or idx[-1] - idx[0] + 1 == len(idx))  # one contiguous band
        widths.add((int(cols.sum()), int(rows.sum())))
    assert len(widths) > 30  # the widths vary
    a = spec_augment(fb, 20, 50, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, spec_augment(fb, 20, 50, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(spec_augment(fb, 0, 0), fb)


def test_roll_magnitude_and_mixup_waveforms() -> None:
    w = torch.randn(1, 1000)
    out = roll_magnitude(w, np.random.default_rng(3))
    rng = np.random.default_rng(3)  # the same draws: shift uniform in 0..T-1, then the gain
    shift, gain = int(rng.integers(1000)), float(rng.beta(10, 10)) + 0.5
    assert shift > 0 and 0.5 < gain < 1.5
    assert torch.allclose(out, torch.roll(w, shift, -1) * gain)
    assert torch.equal(out, roll_magnitude(w, np.random.default_rng(3)))
    gains = [float(roll_magnitude(torch.ones(1, 4), np.random.default_rng(s))[0, 0]) for s in range(200)]
    assert min(gains) > 0.5 and max(gains) < 1.5 and 0.95 < np.mean(gains) < 1.05
    # Offsets: each mean is removed before mixing (as AudioMAE), so the padding is silence, not -offset.
    first, short, long = torch.randn(1, 100) + 0.5, torch.randn(1, 60) + 0.3, torch.randn(1, 150)
    mixed = mixup_waveforms(first, short, 0.3)
    expected = 0.3 * (first - first.mean()) + 0.7 * torch.nn.functional.pad(short - short.mean(), (0, 40))
    assert mixed.shape == (1, 100) and torch.allclose(mixed, expected - expected.mean())
    expected = 0.6 * (first - first.mean()) + 0.4 * (long - long.mean())[:, :100]
    assert torch.allclose(mixup_waveforms(first, long, 0.6), expected - expected.mean())


# ---------------------------------------------------------------- dataset


@pytest.fixture()
def clips(tmp_path: Path) -> list[tuple[str, int]]:
    """Two good clips (1 kHz at 16 kHz, 0.5 s; 3 kHz at 44.1 kHz, 0.7 s) with labels 0 and 1."""
    return [(_wav(tmp_path / "a.wav", _sine(1000, 16000, 0.5)), 0),
            (_wav(tmp_path / "b.wav", _sine(3000, 44100, 0.7), 44100), 1)]  # fmt: skip


def test_dataset_items(clips: list[tuple[str, int]]) -> None:
    cfg = AudioFeatureConfig(target_length=64, num_mel_bins=32)
    ds = AudioDataset(clips, cfg)
    item = ds[1]
    assert item["audio"].shape == (1, 64, 32) and item["label"] == 1 and (item["index"], item["skipped"]) == (1, 0)
    expected = cfg.finish(cfg.fbank(load_audio(clips[1][0], 16000)))
    assert torch.equal(item["audio"], expected) and torch.equal(ds[1]["audio"], expected)  # eval: deterministic
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["audio"].shape == (2, 1, 64, 32) and batch["label"].tolist() == [0, 1]
    assert torch.allclose(ds.sample_weights(), torch.full((2,), 1000 / 1.01, dtype=torch.float64))
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(ValueError, match="num_classes"):
        AudioDataset(clips, mixup=0.5)
    with pytest.raises(ValueError, match="all ints or all vectors"):
        AudioDataset([clips[0], (clips[1][0], [0.0, 1.0])])
    with pytest.raises(ValueError, match="on_error"):
        AudioDataset(clips, on_error="ignore")


def test_dataset_skip_and_raise(tmp_path: Path, clips: list[tuple[str, int]]) -> None:
    bad = _bad_files(tmp_path)
    items = [clips[0], (bad["empty"][0], 5), (bad["nan"][0], 6), clips[1], (bad["missing"][0], 7)]
    cfg = AudioFeatureConfig(target_length=32)
    with pytest.raises(AudioReadError, match=f"cannot read audio {bad['empty'][0]}: the file is empty"):
        AudioDataset(items, cfg)[1]
    ds = AudioDataset(items, cfg, on_error="skip")
    item = ds[1]
    assert (item["index"], item["label"], item["skipped"]) == (3, 1, 2)
    assert ds[4]["index"] == 0 and ds[4]["skipped"] == 1  # wraps around
    assert [p for p, _ in ds.skipped] == [bad["empty"][0], bad["nan"][0], bad["missing"][0]]
    _ = ds[1]
    assert len(ds.skipped) == 3  # each bad file recorded once
    with pytest.raises(AudioReadError, match="every audio clip failed"):
        AudioDataset(items[1:3], cfg, on_error="skip")[0]


def test_dataset_mixup_mixes_labels_like_the_waveforms(clips: list[tuple[str, int]]) -> None:
    cfg = AudioFeatureConfig(target_length=64)
    ds = AudioDataset(clips, cfg, mixup=1.0, num_classes=3)
    waves = [load_audio(p, 16000) for p, _ in clips]
    mixed = 0
    for seed in range(12):
        torch.manual_seed(seed)
        item = ds[0]
        y = item["label"]
        assert y.dtype == torch.float32 and y.shape == (3,) and y[2] == 0 and torch.isclose(y.sum(), torch.tensor(1.0))
        if 0 < y[0] < 1:  # mixed with clip 1: lam is y[0], and the input is the lam-mix of the waveforms
            mixed += 1
            lam = float(y[0])
            assert 0.05 < lam < 0.95
            expected = cfg.finish(cfg.fbank(mixup_waveforms(waves[0], waves[1], lam)))
            assert torch.allclose(item["audio"], expected, atol=1e-3)
        else:  # its partner was itself
            assert torch.equal(y, torch.tensor([1.0, 0.0, 0.0]))
    assert mixed >= 3
    assert AudioDataset(clips, cfg, mixup=0.0, num_classes=3)[0]["label"] == 0  # no mixup: labels as given


def test_dataset_augmentations_are_seeded(clips: list[tuple[str, int]]) -> None:
    ds = SeededDataset(AudioDataset(clips, AudioFeatureConfig(target_length=64), roll_mag=True, freqm=24, timem=16))
    a, b, c = ds[(0, 11)], ds[(0, 11)], ds[(0, 12)]
    assert torch.equal(a["audio"], b["audio"]) and not torch.equal(a["audio"], c["audio"])
    plain = AudioDataset(clips, AudioFeatureConfig(target_length=64))[0]["audio"]
    assert not torch.equal(a["audio"], plain)


def test_compute_audio_stats(tmp_path: Path, clips: list[tuple[str, int]]) -> None:
    fbanks = [kaldi_fbank(load_audio(p, 16000), 16000) for p, _ in clips]
    values = torch.cat([f.reshape(-1) for f in fbanks]).double()
    stats = compute_audio_stats(clips, progress=False)
    assert stats["clips"] == 2 and stats["values"] == values.numel() and stats["skipped"] == []
    assert stats["mean"] == pytest.approx(values.mean().item(), rel=1e-9)
    assert stats["std"] == pytest.approx(values.std(unbiased=False).item(), rel=1e-9)
    assert stats["mean_clip_std"] == pytest.approx(np.mean([f.double().std(unbiased=False).item() for f in fbanks]))
    json.dumps(stats)  # serialisable for the CLI
    padded = compute_audio_stats([p for p, _ in clips], target_length=100, progress=False)
    assert padded["values"] == 2 * 100 * 128
    (tmp_path / "list.txt").write_text("a.wav 0\nb.wav 1\n")
    assert compute_audio_stats(tmp_path / "list.txt", progress=False)["mean"] == stats["mean"]
    empty = _bad_files(tmp_path)["empty"][0]
    with pytest.raises(AudioReadError, match="empty"):
        compute_audio_stats([clips[0][0], empty], progress=False)
    skipping = compute_audio_stats(tmp_path, on_error="skip", progress=False)  # a folder: every audio file in it
    assert skipping["clips"] == 2 and skipping["mean"] == pytest.approx(stats["mean"])
    skipped = {Path(s["path"]).name for s in skipping["skipped"]}
    assert skipped == {"empty.wav", "garbage.wav", "zero.wav", "nan.wav", "inf.wav"}


# ---------------------------------------------------------------- embedded audio part


@pytest.fixture(scope="module")
def audio_part(embedded_audio_dir: Path) -> Path:
    return embedded_audio_dir / "v1" / "audio"


def test_embedded_audio_part_counts_lists_and_format(audio_part: Path) -> None:
    m = json.loads((audio_part / "manifest.json").read_text())
    _, labels = load_digits_source()
    is_val = stratified_split(labels)
    assert m["counts"]["train"] == int((~is_val).sum()) and m["counts"]["val"] == int(is_val.sum())
    assert m["counts"]["sample_rate"] == 16000 and m["counts"]["melodies"] == [list(x) for x in AUDIO_MELODIES]
    for split in ("train", "val"):
        items = read_audio_json(audio_part / f"{split}.json", audio_part / "labels.csv", multi_label=False)
        assert len(items) == m["counts"][split]
        ids = [int(Path(p).stem) for p, _ in items]
        assert all(is_val[i] == (split == "val") and labels[i] == y == int(Path(p).parent.name)
                   for i, (p, y) in zip(ids, items))  # fmt: skip
    assert read_label_csv(audio_part / "labels.csv") == {f"/digit/{c}": c for c in range(10)}
    with wave.open(str(next(audio_part.glob("val/7/*.wav")))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 16000)
    assert embedded_audio_root(audio_part.parents[1], progress=False) == audio_part
    assert "scikit-learn" in (audio_part / "README.txt").read_text()


def test_embedded_audio_is_deterministic(audio_part: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two builds of a 30-digit subset give the same manifest, and the same bytes as the full build."""
    images, labels = load_digits_source()
    monkeypatch.setattr(embedded, "load_digits_source", lambda: (images[:30], labels[:30]))
    shas = [json.loads((ensure_embedded_dataset(tmp_path / n, parts=("audio",), progress=False) / "v1" / "audio"
                        / "manifest.json").read_text())["sha256"] for n in "ab"]  # fmt: skip
    assert shas[0] == shas[1]
    for f in sorted((tmp_path / "a" / "v1" / "audio").rglob("*.wav")):  # the subset's split differs: match by name
        assert f.read_bytes() == next(audio_part.glob(f"*/*/{f.name}")).read_bytes(), f.name
    assert np.array_equal(render_digit_audio(3, 5), render_digit_audio(3, 5))
    assert verify_part(audio_part)


def test_embedded_audio_classes_are_learnable(audio_part: Path) -> None:
    """A linear classifier on pooled log-mel features separates the ten melodies (a few hundred clips)."""
    cfg = AudioFeatureConfig(target_length=100, mean=-4.7, std=3.6)  # about the part's own statistics

    def features(split: str, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        lists = (audio_part / f"{split}.json", audio_part / "labels.csv")
        ds = AudioDataset.from_json(*lists, multi_label=False, config=cfg)
        picks = range(0, len(ds), step)
        x = torch.stack([ds[i]["audio"] for i in picks])
        assert x.shape[1:] == (1, 100, 128)
        return torch.nn.functional.avg_pool2d(x, (4, 4)).flatten(1), torch.tensor([ds.targets[i] for i in picks])

    (xt, yt), (xv, yv) = features("train", 4), features("val", 2)
    linear = torch.nn.Linear(xt.shape[1], 10)
    opt = torch.optim.Adam(linear.parameters(), lr=1e-2)
    for _ in range(200):  # full-batch softmax regression
        opt.zero_grad()
        torch.nn.functional.cross_entropy(linear(xt), yt).backward()
        opt.step()
    assert (linear(xv).argmax(1) == yv).float().mean() > 0.85
