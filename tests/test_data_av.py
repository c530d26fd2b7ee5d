"""The audio-visual data source (``data.av``): a video file's frames and sound track as one sample,
CAV-MAE's JSON of wavs and extracted frames, the bad-input policies, and the embedded ``av`` part.

Clips are written in tmp_path with PyAV (:func:`write_av_clip`: MPEG-4 video plus a lossless FLAC or
PCM sound track), so decord and PyAV decode real files."""

import json
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from omnimask import OmniMaskConfig
from omnimask.data import ensure_embedded_dataset
from omnimask.data.errors import DataReadError
from omnimask.data.sources import SOURCES
from omnimask.modalities import MODALITIES
from omnimask.modalities.audio.av import (
    AVDataConfig,
    AVDataset,
    AVListError,
    AVReadError,
    AVSample,
    MissingSoundError,
    build_av_dataset,
    model_inputs,
    read_av_list,
)
from omnimask.modalities.audio.av_embedded import write_av_clip
from omnimask.modalities.audio.embedded import render_digit_audio
from omnimask.modalities.audio.features import read_audio_file
from omnimask.registry import ConfigError
from omnimask.run_config import from_dict
from omnimask.runners.common import data_configs

SILENCE = -15.942385  # Kaldi's log floor: every bin of a silent frame

_DEC = {"name": "transformer", "dim": 16, "depth": 1, "num_heads": 2}
_AUDIO = {"tokenizer": {"target_length": 128, "num_mel_bins": 64, "patch_size": 8}, "decoder": _DEC}


def _config(visual: str = "image") -> OmniMaskConfig:
    tok = {"image_size": 32, "patch_size": 8, "in_chans": 3}
    if visual == "video":
        tok.update(num_frames=4, tubelet_size=2)
    mods = {visual: {"tokenizer": tok, "decoder": _DEC}, "audio": _AUDIO}
    return OmniMaskConfig(encoder={"dim": 32, "depth": 2, "num_heads": 2}, modalities=mods)


@pytest.fixture(scope="module")
def mods() -> dict:
    return _config().modalities


@pytest.fixture(scope="module")
def embedded_av(tmp_path_factory):
    """The embedded ``av`` part, built once for this module (about 5 s)."""
    return ensure_embedded_dataset(tmp_path_factory.mktemp("embedded_av"), parts=("av",), progress=False)


def _frames(n: int = 16) -> np.ndarray:
    """(n, 32, 32, 3) uint8: a square whose grey level changes with the frame."""
    x = np.full((n, 32, 32, 3), 200, np.uint8)
    for t in range(n):
        x[t, 8:24, 8:24] = 10 * t
    return x


def _tone(rate: int, seconds: float = 1.0, channels: int = 1) -> np.ndarray:
    """Smooth tones (440, 1250, 2600 Hz, sine envelopes: band-limited), int16 (N,) or (N, C);
    channel c > 0 is channel 0 at a different level with an extra 700 Hz tone."""
    t = np.arange(int(round(rate * seconds))) / rate

    def env(a: float, b: float) -> np.ndarray:
        return np.clip(np.sin(np.pi * (t - a) / (b - a)), 0, None) * ((t > a) & (t < b))

    x = 0.3 * np.sin(2 * np.pi * 440 * t) * env(0, 1) + 0.2 * np.sin(2 * np.pi * 1250 * t) * env(0.3, 0.9)
    x += 0.1 * np.sin(2 * np.pi * 2600 * t) * env(0.1, 0.6)
    cols = [x] + [0.5 * x + 0.2 * np.sin(2 * np.pi * 700 * t) * c / channels for c in range(1, channels)]
    out = np.rint(np.stack(cols, axis=1) * 32767).astype(np.int16)
    return out[:, 0] if channels == 1 else out


def _clip(path, samples, rate=16000, container="matroska", codec="flac", n_frames=16):
    write_av_clip(path, _frames(n_frames), samples, sample_rate=rate, container=container, audio_codec=codec)
    return str(path)


def _dataset(mods, paths, train=False, **cfg) -> AVDataset:
    config = AVDataConfig(**cfg)
    visual, features = model_inputs(config, mods)
    return AVDataset([AVSample(str(p), k) for k, p in enumerate(paths)], visual, features, config, train=train)


def _audio(mods, path, **cfg) -> torch.Tensor:
    return _dataset(mods, [path], **cfg)[0]["audio"]


def _norm(mods, raw: float) -> float:
    (mean,), (std,) = mods["audio"]["processor"]["mean"], mods["audio"]["processor"]["std"]
    return (raw - mean) / std


# ---------------------------------------------------------------- the sound track


def test_sound_track_gives_the_audio_paths_fbank(tmp_path, mods):
    """A 16 kHz mono track in a video = the audio modality's processor on the same samples as a wav."""
    samples = render_digit_audio(3, 7)
    sf.write(tmp_path / "a.wav", samples, 16000, subtype="PCM_16")
    for container, codec in (("mp4", "flac"), ("matroska", "pcm_s16le")):
        video = _clip(tmp_path / f"a.{container}", samples, container=container, codec=codec)
        item = _dataset(mods, [video])[0]
        audio = mods["audio"]
        expected = MODALITIES.get("audio").build_processor(audio["tokenizer"], audio["processor"])(
            str(tmp_path / "a.wav")
        )
        assert item["audio"].shape == (1, 128, 64) and item["image"].shape == (3, 32, 32)
        torch.testing.assert_close(item["audio"], expected, rtol=0, atol=1e-5)
        assert item["label"] == 0 and item["skipped"] == 0


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_odd_sample_rates_are_resampled(tmp_path, mods, rate):
    ref = _audio(mods, _clip(tmp_path / "ref.mkv", _tone(16000)))[0, :98]
    x = _audio(mods, _clip(tmp_path / "odd.mkv", _tone(rate), rate=rate))[0, :98]
    strong = ref > ref.max() - 0.6  # the bins that carry the tones (about 8 % of them)
    assert strong.float().mean() > 0.05
    assert (x - ref)[strong].abs().max() < 0.01 and (x - ref).abs().mean() < 0.1
    assert (x[:, 30:] - ref[:, 30:]).abs().max() > 0.0  # really another file, not the reference


def test_aac_in_mp4(tmp_path, mods):
    """The usual real-world track: lossy AAC at 44.1 kHz, stereo, padded to whole 1024-sample frames."""
    ref = _audio(mods, _clip(tmp_path / "ref.mkv", _tone(16000)))[0, :98]
    aac = _clip(tmp_path / "aac.mp4", _tone(44100, channels=2)[:, [0, 0]], rate=44100, container="mp4", codec="aac")
    x = _audio(mods, aac, short_audio="raise")[0, :98]  # AAC's padding is not mistaken for a short track
    strong = ref > ref.max() - 0.6
    assert (x - ref)[strong].abs().max() < 0.05


@pytest.mark.parametrize("channels", [2, 6])
def test_several_channels_first_or_mean(tmp_path, mods, channels):
    multi = _clip(tmp_path / "multi.mkv", _tone(16000, channels=channels))
    first = _audio(mods, multi, channels="first")
    torch.testing.assert_close(first, _audio(mods, _clip(tmp_path / "c0.mkv", _tone(16000))), rtol=0, atol=1e-6)
    decoded, rate = read_audio_file(multi)
    assert decoded.shape[0] == channels
    audio = mods["audio"]
    process = MODALITIES.get("audio").build_processor(audio["tokenizer"], audio["processor"])
    mean = _audio(mods, multi, channels="mean")
    torch.testing.assert_close(mean, process((decoded.mean(0), rate)), rtol=0, atol=1e-6)
    assert (mean - first).abs().max() > 0.01


def test_video_without_sound_track(tmp_path, mods):
    silent = _clip(tmp_path / "silent.mp4", None, container="mp4")
    good = _clip(tmp_path / "good.mp4", _tone(16000), container="mp4")
    with pytest.raises(MissingSoundError, match=r"silent\.mp4: it has no sound track"):
        _dataset(mods, [silent, good])[0]
    for cfg in ({"missing_audio": "skip"}, {"on_error": "skip"}):
        ds = _dataset(mods, [silent, good], **cfg)
        item = ds[0]
        assert item["index"] == 1 and item["skipped"] == 1 and ds.skipped[0][0] == silent
    quiet = _dataset(mods, [silent], missing_audio="silence")[0]["audio"][0]
    torch.testing.assert_close(quiet[:98], torch.full((98, 64), _norm(mods, SILENCE)))  # 1 s of silence
    torch.testing.assert_close(quiet[98:], torch.full((30, 64), _norm(mods, 0.0)))  # then the padding
    sf.write(tmp_path / "sound.wav", _tone(16000), 16000)
    with pytest.raises(AVReadError, match=r"sound\.wav: it has no video stream"):
        _dataset(mods, [str(tmp_path / "sound.wav")])[0]
    # missing_audio=skip skips only silent videos: a broken file still raises under on_error=raise
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    with pytest.raises(AVReadError, match=r"broken\.mp4"):
        _dataset(mods, [str(tmp_path / "broken.mp4"), good], missing_audio="skip")[0]


def test_short_sound_track_is_padded_or_an_error(tmp_path, mods):
    short = _clip(tmp_path / "short.mkv", _tone(16000, seconds=0.5))  # 0.5 s of sound in a 1 s video
    ds = _dataset(mods, [short])
    audio = ds[0]["audio"][0]
    assert ds.short_tracks == [short]
    torch.testing.assert_close(audio[48:], torch.full((80, 64), _norm(mods, 0.0)))  # 48 frames of sound
    assert audio[:48].std() > 0.1
    with pytest.raises(AVReadError, match=r"short\.mkv: its sound track lasts 0\.500 s, the video 1\.00\d s"):
        _dataset(mods, [short], short_audio="raise")[0]
    full = _clip(tmp_path / "full.mkv", _tone(16000))
    assert _dataset(mods, [full], short_audio="raise")[0]["audio"].shape == (1, 128, 64)


def test_video_frames_and_training_augmentation(tmp_path, mods):
    path = _clip(tmp_path / "a.mp4", _tone(16000), container="mp4")
    val = _dataset(mods, [path])
    x = val[0]["image"]
    assert torch.equal(x, val[0]["image"])  # held out: always the middle frame (8 of 16)
    mean, std = mods["image"]["processor"]["mean"][0], mods["image"]["processor"]["std"][0]
    assert abs(float(x[0, 16, 16]) * std + mean - 80 / 255) < 0.03
    train = _dataset(mods, [path], train=True)
    items = [train[0] for _ in range(6)]
    assert len({round(float(it["image"][0, 16, 16]), 3) for it in items}) > 1  # random frames
    assert all(not torch.equal(it["audio"], val[0]["audio"]) for it in items)  # noise + roll
    quiet = _dataset(mods, [path], train=True, audio_noise=False, random_frame=False)[0]
    assert torch.equal(quiet["audio"], val[0]["audio"]) and torch.equal(quiet["image"], x)
    assert torch.equal(pickle.loads(pickle.dumps(val))[0]["audio"], val[0]["audio"])  # DataLoader workers


def test_preload_gives_the_same_items(tmp_path, mods):
    """preload decodes each file once; the items (augmented ones too) are those of decoding per item."""
    paths = [_clip(tmp_path / f"{i}.mp4", _tone(16000 if i else 22050), container="mp4") for i in range(2)]
    for train in (False, True):
        lazy, eager = _dataset(mods, paths, train=train), _dataset(mods, paths, train=train, preload=True)
        assert sorted(eager._cache) == sorted(paths) and not lazy._cache
        for i in range(2):
            torch.manual_seed(i)  # the item's draws (frame, noise, roll) come from torch's RNG
            a = lazy[i]
            torch.manual_seed(i)
            b = eager[i]
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["audio"], b["audio"])
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    ds = _dataset(mods, [paths[0], str(broken)], preload=True)  # a bad file is left to the read policy
    with pytest.raises(DataReadError, match="broken.mp4"):
        ds[1]


def test_video_modality_gets_a_clip(tmp_path):
    path = _clip(tmp_path / "a.mp4", _tone(16000), container="mp4")
    item = _dataset(_config("video").modalities, [path], visual="video")[0]
    assert item["video"].shape == (3, 4, 32, 32) and item["audio"].shape == (1, 128, 64)
    assert item["video"][0, :, 16, 16].unique().numel() == 4  # four different frames


# ---------------------------------------------------------------- CAV-MAE's format


def _cavmae(tmp_path, ids=("vid_a", "vid_b"), mids=("/m/dog,/m/cat", "/m/bird")) -> str:
    """CAV-MAE data: wavs, frame_<k>/<id>.jpg (frame k is grey level 20 k), a JSON list."""
    entries = []
    for n, (vid, mid) in enumerate(zip(ids, mids)):
        sf.write(tmp_path / f"{vid}.wav", _tone(16000) // (n + 1), 16000, subtype="PCM_16")
        for k in range(10):
            (tmp_path / "frames" / f"frame_{k}").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (40, 32), (20 * k,) * 3).save(tmp_path / "frames" / f"frame_{k}" / f"{vid}.jpg")
        entries.append({"wav": f"{vid}.wav", "labels": mid, "video_id": vid, "video_path": "frames"})
    (tmp_path / "list.json").write_text(json.dumps({"data": entries}))
    return str(tmp_path / "list.json")


def _grey(mods, x: torch.Tensor) -> float:
    mean, std = mods["image"]["processor"]["mean"][0], mods["image"]["processor"]["std"][0]
    return float(x[0].mean()) * std + mean


def test_cavmae_json_frames_and_labels(tmp_path, mods):
    list_file = _cavmae(tmp_path)
    ds = build_av_dataset(AVDataConfig(list_file=list_file, val_list_file=list_file), mods, "val")
    item = ds[1]
    assert item["image"].shape == (3, 32, 32) and item["audio"].shape == (1, 128, 64)
    assert abs(_grey(mods, item["image"]) - 100 / 255) < 0.02  # CAV-MAE's eval frame: 5 of 10
    assert ds.targets == [2, 0]  # first mids /m/dog and /m/bird in sorted mids [bird, cat, dog]
    (tmp_path / "labels.csv").write_text("index,mid,display_name\n0,/m/dog,Dog\n1,/m/cat,Cat\n2,/m/bird,Bird\n")
    assert read_av_list(list_file, labels={"/m/dog": 0, "/m/bird": 2}) == [
        AVSample(str(tmp_path / "vid_a.wav"), 0, str(tmp_path / "frames"), "vid_a"),
        AVSample(str(tmp_path / "vid_b.wav"), 2, str(tmp_path / "frames"), "vid_b"),
    ]
    cfg = AVDataConfig(list_file=list_file, label_csv=str(tmp_path / "labels.csv"), eval_frame=2)
    assert build_av_dataset(cfg, mods, "train").targets == [0, 2]
    assert abs(_grey(mods, build_av_dataset(cfg, mods, "train_eval")[0]["image"]) - 40 / 255) < 0.02
    train = build_av_dataset(cfg, mods, "train")
    greys = {round(_grey(mods, train[0]["image"]) * 255 / 20) for _ in range(12)}
    assert len(greys) > 2 and greys <= set(range(10))  # a random one of the 10 frames
    clip = build_av_dataset(
        AVDataConfig(list_file=list_file, visual="video"), _config("video").modalities, "train_eval"
    )
    assert clip[0]["video"].shape == (3, 4, 32, 32)


def test_cavmae_missing_frames_and_wav(tmp_path, mods):
    list_file = _cavmae(tmp_path)
    (tmp_path / "frames" / "frame_5" / "vid_a.jpg").unlink()
    cfg = AVDataConfig(list_file=list_file, val_list_file=list_file)
    with pytest.raises(AVReadError, match=r"frame_5/vid_a\.jpg: the file does not exist"):
        build_av_dataset(cfg, mods, "val")[0]
    for k in range(10):
        (tmp_path / "frames" / f"frame_{k}" / "vid_b.jpg").rename(tmp_path / f"b{k}.jpg")
    (tmp_path / "frames" / "frame_5").rmdir()
    with pytest.raises(AVReadError, match=r"the frame folder .*frame_5 does not exist"):
        build_av_dataset(cfg, mods, "val")[1]
    skip = build_av_dataset(AVDataConfig(list_file=list_file, val_list_file=list_file, on_error="skip"), mods, "val")
    with pytest.raises(DataReadError, match="giving up at index 0: every audio-visual sample failed"):
        skip[0]
    assert len(skip.skipped) == 2
    (tmp_path / "vid_a.wav").unlink()
    with pytest.raises(MissingSoundError, match=r"vid_a\.wav: the wav file does not exist"):
        build_av_dataset(AVDataConfig(list_file=list_file, eval_frame=1), mods, "train_eval")[0]


def test_list_and_config_errors(tmp_path, mods):
    list_file = _cavmae(tmp_path)
    (tmp_path / "clips.txt").write_text("a.mp4 0\n")
    (tmp_path / "a.mp4").write_bytes(b"x")
    with pytest.raises(AVListError, match="format cavmae needs CAV-MAE's JSON"):
        read_av_list(tmp_path / "clips.txt", fmt="cavmae")
    with pytest.raises(AVListError, match="format 'video' needs 'video'"):
        read_av_list(list_file, fmt="video")
    assert read_av_list(tmp_path / "clips.txt") == [AVSample(str(tmp_path / "a.mp4"), 0)]
    (tmp_path / "v.json").write_text(json.dumps({"data": [{"video": "a.mp4", "labels": 3}]}))
    assert read_av_list(tmp_path / "v.json") == [AVSample(str(tmp_path / "a.mp4"), 3)]
    with pytest.raises(ConfigError, match=r"data\.av\.channels must be one of \['mean', 'first'\], got 'left'"):
        data_configs(_config(), {"av": {"channels": "left"}})
    with pytest.raises(ConfigError, match="chanels"):
        data_configs(_config(), {"av": {"chanels": "first"}})
    with pytest.raises(ConfigError, match="missing_audio"):
        from_dict(AVDataConfig, {"missing_audio": "ignore"}, "data.av")
    with pytest.raises(ValueError, match="the model has no modality 'frames'"):
        build_av_dataset(AVDataConfig(visual="frames"), mods, "train")
    with pytest.raises(ValueError, match="val_list_file is required"):
        build_av_dataset(AVDataConfig(list_file=list_file), mods, "val")


# ---------------------------------------------------------------- the source and the embedded part


def test_av_source_builds_the_embedded_part(embedded_av, mods, monkeypatch):
    monkeypatch.setenv("OMNIMASK_DATA_DIR", str(embedded_av))
    spec = SOURCES.get("av")
    cfg = data_configs(_config(), {"av": {}})["av"]
    assert spec.keys(cfg) == ("image", "audio")
    train, val = spec.build(cfg, mods, "train"), spec.build(cfg, mods, "val")
    assert (len(train), len(val)) == (368, 82) and set(train.targets) == set(range(10))
    item = val[0]
    assert item["image"].shape == (3, 32, 32) and item["audio"].shape == (1, 128, 64)
    assert item["audio"][0, :98].std() > 0.1 and item["image"].std() > 0.1  # a melody, a digit
    assert train[0]["image"].shape == (3, 32, 32)
    clip = spec.build(AVDataConfig(visual="video"), _config("video").modalities, "val")[0]["video"]
    assert clip.shape == (3, 4, 32, 32) and not torch.equal(clip[:, 0], clip[:, -1])  # the digit moves


def test_embedded_part_carries_each_digits_melody(embedded_av):
    import decord

    part = embedded_av / "v1" / "av"
    manifest = json.loads((part / "manifest.json").read_text())
    assert manifest["counts"]["total"] == 450 and manifest["counts"]["codecs"]["audio"] == "flac"
    rel, label = (part / "train.csv").read_text().splitlines()[0].split()
    index = int(rel.split("/")[-1].split(".")[0])
    decoded, rate = read_audio_file(part / rel)
    assert rate == 16000 and torch.equal(
        decoded[0], torch.from_numpy(render_digit_audio(int(label), index) / 32768.0).float()
    )
    assert len(decord.VideoReader(str(part / rel))) == 16
    assert decord.AudioReader(str(part / rel), sample_rate=16000, mono=True).shape == (1, 16000)


def test_clip_writer_is_deterministic(tmp_path):
    a = write_av_clip(tmp_path / "a.mp4", _frames(), render_digit_audio(1, 1))
    b = write_av_clip(tmp_path / "b.mp4", _frames(), render_digit_audio(1, 1))
    assert a == b and (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_registered():
    assert "av" in SOURCES
    from omnimask.data import available_parts

    assert "av" in available_parts()
    assert issubclass(AVReadError, DataReadError)
