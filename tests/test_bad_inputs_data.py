"""A bad-input matrix for the data readers, processors and tokenizers.

Every case is ``(id, make_input(tmp_path), call, expected)``. ``make_input`` writes its files with
soundfile / PIL / numpy into ``tmp_path`` (no binary fixtures) and returns ``(argument, reference)``;
``call(argument)`` runs the code under test. ``expected`` is one outcome class:

* :class:`Ok`: the result equals the reference, which ``make_input`` computed independently
  (numpy arithmetic on the array it wrote, or the same pipeline on an explicitly converted input);
* :class:`Error`: the call raises this type and the message names the file / key / line;
* :class:`Skip`: the call returns the number of skipped samples it counted.

:func:`judge` classifies one run as ``correct``, ``garbage`` (returned something wrong, or returned
where it should have raised) or ``unhelpful`` (raised the wrong error, or one that does not name
the culprit); the test asserts ``correct``. :func:`matrix_totals` counts the cases per class.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from omnimask.cli import main as cli_main
from omnimask.modalities.audio import AudioDataset, AudioListError, AudioReadError, read_audio_list
from omnimask.modalities.audio.features import load_audio, read_audio_file
from omnimask.modalities.audio.spec import _build_processor
from omnimask.modalities.audio.stats import compute_audio_stats
from omnimask.modalities.audio.tokenizer import SpectrogramTokenizer
from omnimask.modalities.image.folder import ImageFolderDataset, load_image
from omnimask.modalities.image.tokenizer import ImagePatchTokenizer
from omnimask.modalities.points.reader import PointCloudDataset
from omnimask.modalities.points.tokenizer import PointGroupTokenizer
from omnimask.modalities.video.reader import VideoListError, read_video_list
from omnimask.modalities.video.tokenizer import VideoTubeTokenizer

# ---------------------------------------------------------------- outcome classes


@dataclass(frozen=True)
class Ok:
    atol: float = 0.0


@dataclass(frozen=True)
class Error:
    type: type[BaseException]
    needles: tuple[str, ...]  # each must appear in the message (case-insensitive)


@dataclass(frozen=True)
class Skip:
    count: int


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path], tuple[Any, Any]]
    call: Callable[[Any], Any]
    expected: Ok | Error | Skip


class CliFailure(Exception):
    """``omnimask`` exited 2 with a one-line ``error: ...`` and no traceback."""


# ---------------------------------------------------------------- writers and helpers

RNG = np.random.default_rng(0)


def _ints(bits: int, shape: tuple[int, ...]) -> np.ndarray:
    return RNG.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), shape)


def _wav(path: Path, data: np.ndarray, rate: int = 16000, subtype: str | None = None, **kw: Any) -> str:
    sf.write(path, data, rate, subtype=subtype, **kw)
    return str(path)


def _cut(path: str, keep: float | int) -> str:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    return path


def _pcm(bits: int, subtype: str, channels: int = 2) -> Callable[[Path], tuple[Any, Any]]:
    """Integer PCM written exactly (values k / 2**(bits-1)): the reference is the channel mean."""

    def make(tmp: Path) -> tuple[Any, Any]:
        x = (_ints(bits, (800, channels)) / 2.0 ** (bits - 1)).astype(np.float64)
        return _wav(tmp / f"pcm{bits}.wav", x, subtype=subtype), x.mean(axis=1)[None]

    return make


def _sine(rate: int, seconds: float = 0.25, f: float = 440.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * f * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def _odd_rate(rate: int) -> Callable[[Path], tuple[Any, Any]]:
    def make(tmp: Path) -> tuple[Any, Any]:
        path = _wav(tmp / f"r{rate}.wav", _sine(rate), rate, "FLOAT")
        return path, _sine(16000)[None, 200:-200]  # the analytic sine at 16 kHz, edges left out

    return make


def _mono(path: str, rate: int = 16000) -> np.ndarray:
    return load_audio(path, rate).numpy()


def _same(got: Any, ref: Any, atol: float) -> bool:
    if isinstance(ref, (tuple, list)):
        return (
            isinstance(got, (tuple, list)) and len(got) == len(ref) and all(_same(g, r, atol) for g, r in zip(got, ref))
        )
    if isinstance(ref, (str, int)) and not isinstance(ref, bool):
        return got == ref
    got, ref = (np.asarray(v.detach() if isinstance(v, torch.Tensor) else v, dtype=np.float64) for v in (got, ref))
    return got.shape == ref.shape and bool(np.allclose(got, ref, rtol=0, atol=atol))


def _cli(argv: list[str]) -> Any:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = cli_main(argv)
    errors = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    if rc in (2, 3) and len(errors) == 1 and "Traceback" not in err.getvalue():  # usage / data error
        raise CliFailure(errors[0])
    if rc != 0:
        raise RuntimeError(f"exit {rc}: {err.getvalue()[-500:]}")
    return json.loads(out.getvalue())


# ---------------------------------------------------------------- audio files


def _trunc_wav(keep: float | int) -> Callable[[Path], tuple[Any, Any]]:
    return lambda tmp: (_cut(_wav(tmp / "trunc.wav", _ints(16, (16000, 2)).astype(np.int16)), keep), None)


def _trunc_flac(tmp: Path) -> tuple[Any, Any]:
    return _cut(_wav(tmp / "trunc.flac", _ints(16, (16000,)).astype(np.int16)), 0.5), None


def _six_channels(tmp: Path) -> tuple[Any, Any]:
    x = RNG.uniform(-0.5, 0.5, (1000, 6)).astype(np.float32)
    return _wav(tmp / "six.wav", x, subtype="FLOAT"), x.astype(np.float64).mean(axis=1)[None]


def _float_wav(tmp: Path) -> tuple[Any, Any]:
    x = RNG.uniform(-1, 1, 999).astype(np.float32)
    return _wav(tmp / "f.wav", x, subtype="FLOAT"), x[None]


def _flac(tmp: Path) -> tuple[Any, Any]:
    x = _ints(16, (2205, 2)) / 32768.0
    return _wav(tmp / "c.flac", x, 22050, "PCM_16"), (22050, x.T)


def _ogg(tmp: Path) -> tuple[Any, Any]:
    x = _sine(44100)
    return _wav(tmp / "v.ogg", x, 44100, "VORBIS", format="OGG"), (44100, x[None])


def _read_at_own_rate(path: str) -> tuple[int, np.ndarray]:
    waveform, rate = read_audio_file(path)
    return rate, waveform.numpy()


def _resampled(path: str) -> np.ndarray:
    return load_audio(path, 16000).numpy()[:, 200:-200]


# ---------------------------------------------------------------- the audio processor

PROCESS = _build_processor(
    {"num_mel_bins": 32, "target_length": 48}, {"mean": [-4.0], "std": [9.0], "sample_rate": 16000}
)


def _proc(array: Callable[[], np.ndarray], reference: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], Any]:
    """``(array, 16000)`` against the processor of an explicit float32 mono ``reference(array)``."""

    def make(tmp: Path) -> tuple[Any, Any]:
        a = array()
        return (a, 16000), PROCESS((torch.from_numpy(reference(a).astype(np.float32)), 16000))

    return make


def _tc_int16() -> np.ndarray:
    return _ints(16, (3200, 2)).astype(np.int16)


# ---------------------------------------------------------------- images


def _img(tmp: Path, name: str, im: Image.Image, **kw: Any) -> str:
    im.save(tmp / name, **kw)
    return str(tmp / name)


def _gray16(channels: int) -> Callable[[Path], tuple[Any, Any]]:
    def make(tmp: Path) -> tuple[Any, Any]:
        a = RNG.integers(0, 65536, (12, 10)).astype(np.uint16)
        ref = np.round(a / 257.0)
        return (_img(tmp, "g16.png", Image.fromarray(a)), channels), ref if channels == 1 else np.stack([ref] * 3, -1)

    return make


def _palette(transparent: bool) -> Callable[[Path], tuple[Any, Any]]:
    def make(tmp: Path) -> tuple[Any, Any]:
        colours = RNG.integers(0, 256, (16, 3)).astype(np.uint8)
        idx = RNG.integers(0, 16, (9, 11)).astype(np.uint8)
        im = Image.fromarray(idx, "P")
        im.putpalette(colours.reshape(-1).tolist())
        ref = colours[idx].astype(np.float64)
        if transparent:  # index 0 is fully transparent: black, the documented background
            ref[idx == 0] = 0
        kw = {"transparency": 0} if transparent else {}
        return (_img(tmp, "pal.png", im, **kw), 3), ref

    return make


def _alpha(mode: str, channels: int) -> Callable[[Path], tuple[Any, Any]]:
    def make(tmp: Path) -> tuple[Any, Any]:
        a = RNG.integers(0, 256, (9, 11, len(mode))).astype(np.uint8)
        ref = np.round(a[..., :-1] * (a[..., -1:] / 255.0))  # composited onto black
        if channels == 1 and mode == "LA":
            ref = ref[..., 0]
        return (_img(tmp, f"{mode}.png", Image.fromarray(a, mode)), channels), ref

    return make


def _cmyk(tmp: Path) -> tuple[Any, Any]:
    c, m, y, k = 10, 200, 30, 40
    ref = np.broadcast_to((255 - np.array([c, m, y])) * (255 - k) / 255.0, (8, 8, 3))
    return (_img(tmp, "cmyk.jpg", Image.new("CMYK", (8, 8), (c, m, y, k)), quality=100), 3), ref


def _exif_rotated(tmp: Path) -> tuple[Any, Any]:
    a = np.zeros((16, 32, 3), np.uint8)
    a[:8, :16] = 255  # a white top-left quarter, 8x8 JPEG blocks: nearly lossless
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    return (_img(tmp, "rot.jpg", im, exif=exif, quality=100), 3), np.rot90(a, k=-1)


def _bad_image(name: str, keep: float | int) -> Callable[[Path], tuple[Any, Any]]:
    def make(tmp: Path) -> tuple[Any, Any]:
        im = Image.fromarray(RNG.integers(0, 256, (64, 64, 3)).astype(np.uint8))
        return (_cut(_img(tmp, name, im), keep), 3), None

    return make


def _load(arg: tuple[str, int]) -> np.ndarray:
    return np.asarray(load_image(*arg))


def _image_tree(tmp: Path) -> tuple[Any, Any]:
    for name in ("a", "b", "c"):
        (tmp / "x").mkdir(exist_ok=True)
        Image.fromarray(RNG.integers(0, 256, (8, 8, 3)).astype(np.uint8)).save(tmp / "x" / f"{name}.png")
    (tmp / "x" / "b.png").write_bytes(b"not a png")
    return ImageFolderDataset(tmp, on_error="skip"), None


def _count_skips(ds: Any) -> int:
    return sum(int(ds[i].get("skipped", 0)) for i in range(len(ds)))


def _audio_folder(tmp: Path) -> tuple[Any, Any]:
    (tmp / "bad.wav").write_bytes(b"RIFF garbage" * 10)
    _wav(tmp / "good.wav", _sine(16000))
    return tmp, None


# ---------------------------------------------------------------- audio-stats


def _silent(tmp: Path) -> tuple[Any, Any]:
    for k in range(2):
        _wav(tmp / f"quiet{k}.wav", np.zeros(4000, np.float32))
    return tmp, None


# ---------------------------------------------------------------- lists


def _list(text: str, *files: str) -> Callable[[Path], tuple[Any, Any]]:
    def make(tmp: Path) -> tuple[Any, Any]:
        for f in files:
            (tmp / f).write_bytes(b"x")
        (tmp / "list.txt").write_text(text)
        return tmp / "list.txt", None

    return make


def _tab_list(tmp: Path) -> tuple[Any, Any]:
    (tmp / "my clip.wav").write_bytes(b"x")
    (tmp / "list.txt").write_text("my clip.wav\t3\n")
    return tmp / "list.txt", [(str(tmp / "my clip.wav"), 3)]


def _negative_items(tmp: Path) -> tuple[Any, Any]:
    np.savetxt(tmp / "cloud.txt", RNG.normal(size=(40, 3)))
    _wav(tmp / "clip.wav", _sine(16000))
    return tmp, None


# ---------------------------------------------------------------- tokenizers


def _tok(build: Callable[[], Any], shape: tuple[int, ...], dtype: torch.dtype) -> Callable[[Path], Any]:
    """``tokenize`` of a ``dtype`` input against ``tokenize`` of the same values in float32."""

    def make(tmp: Path) -> tuple[Any, Any]:
        torch.manual_seed(0)
        tok = build()
        x = torch.randn(shape).to(dtype)
        ref = tok.tokenize(x.float()) if dtype.is_floating_point else None
        return (tok, x), ref and (ref.tokens, ref.pos if ref.pos is not None else 0)

    return make


def _tokenize(arg: tuple[Any, torch.Tensor]) -> Any:
    t = arg[0].tokenize(arg[1])
    return t.tokens, t.pos if t.pos is not None else 0


def _image_tok() -> Any:
    return ImagePatchTokenizer(dim=8, image_size=8, patch_size=4)


def _audio_tok() -> Any:
    return SpectrogramTokenizer(dim=8, target_length=16, num_mel_bins=16, patch_size=4)


def _video_tok() -> Any:
    return VideoTubeTokenizer(dim=8, num_frames=4, image_size=8, patch_size=4, tubelet_size=2)


def _points_tok() -> Any:
    return PointGroupTokenizer(dim=8, num_points=64, num_groups=8, group_size=8)


# ---------------------------------------------------------------- the matrix

CASES: list[Case] = [
    # 1. truncated files
    Case("wav-truncated-half", _trunc_wav(0.5), _mono, Error(AudioReadError, ("trunc.wav", "truncated", "header says 16000 frames"))),
    Case("wav-truncated-to-header", _trunc_wav(60), _mono, Error(AudioReadError, ("trunc.wav", "truncated", "file holds 4 frames"))),
    Case("flac-truncated", _trunc_flac, _mono, Error(AudioReadError, ("trunc.flac",))),
    # 8. kinds of audio real collections contain
    Case("wav-6-channels", _six_channels, _mono, Ok(1e-6)),
    Case("wav-pcm-u8", _pcm(8, "PCM_U8"), _mono, Ok(1e-6)),
    Case("wav-pcm-16", _pcm(16, "PCM_16"), _mono, Ok(1e-6)),
    Case("wav-pcm-24", _pcm(24, "PCM_24"), _mono, Ok(1e-6)),
    Case("wav-pcm-32", _pcm(32, "PCM_32"), _mono, Ok(1e-6)),
    Case("wav-float-mono", _float_wav, _mono, Ok(1e-7)),
    Case("flac-22050", _flac, _read_at_own_rate, Ok(1e-6)),
    Case("ogg-vorbis-44100", _ogg, _read_at_own_rate, Ok(0.05)),
    Case("wav-11025-resampled", _odd_rate(11025), _resampled, Ok(0.02)),
    Case("wav-44100-resampled", _odd_rate(44100), _resampled, Ok(0.02)),
    # 2. the saved model's audio processor
    Case("proc-TC-float32", _proc(lambda: (_tc_int16() / 32768.0).astype(np.float32), lambda a: a.mean(1)), PROCESS, Ok(1e-4)),
    Case("proc-int16", _proc(lambda: _ints(16, (3200,)).astype(np.int16), lambda a: a / 32768.0), PROCESS, Ok(1e-4)),
    Case("proc-int16-TC", _proc(_tc_int16, lambda a: (a / 32768.0).mean(1)), PROCESS, Ok(1e-4)),
    Case("proc-int32", _proc(lambda: _ints(32, (3200,)).astype(np.int32), lambda a: a / 2.0**31), PROCESS, Ok(1e-4)),
    Case("proc-uint8", _proc(lambda: RNG.integers(0, 256, 3200).astype(np.uint8), lambda a: (a - 128.0) / 128), PROCESS, Ok(1e-4)),
    Case("proc-float64-CT", _proc(lambda: RNG.uniform(-1, 1, (2, 3200)), lambda a: a.mean(0)), PROCESS, Ok(1e-4)),
    Case("proc-3d", lambda t: ((np.zeros((2, 3, 3200), np.float32), 16000), None), PROCESS, Error(ValueError, ("(2, 3, 3200)",))),
    Case("proc-bool", lambda t: ((np.ones(3200, bool), 16000), None), PROCESS, Error(ValueError, ("bool",))),
    Case("proc-complex", lambda t: ((np.ones(3200, np.complex64), 16000), None), PROCESS, Error(ValueError, ("complex",))),
    # 3 and 8. images
    Case("png-16bit-gray-L", _gray16(1), _load, Ok(0)),
    Case("png-16bit-gray-RGB", _gray16(3), _load, Ok(0)),
    Case("png-palette", _palette(False), _load, Ok(0)),
    Case("png-palette-transparent", _palette(True), _load, Ok(0)),
    Case("png-LA-as-L", _alpha("LA", 1), _load, Ok(1)),
    Case("png-RGBA", _alpha("RGBA", 3), _load, Ok(1)),
    Case("jpeg-CMYK", _cmyk, _load, Ok(2)),
    Case("jpeg-exif-rotated", _exif_rotated, _load, Ok(2)),
    Case("png-empty", _bad_image("empty.png", 0), _load, Error(ValueError, ("empty.png",))),
    Case("png-truncated", _bad_image("cut.png", 0.5), _load, Error(ValueError, ("cut.png",))),
    Case("jpeg-empty", _bad_image("empty.jpg", 0), _load, Error(ValueError, ("empty.jpg",))),
    Case("jpeg-truncated", _bad_image("cut.jpg", 0.5), _load, Error(ValueError, ("cut.jpg",))),
    # 4. skipped samples are counted
    Case("image-folder-skip-counted", _image_tree, _count_skips, Skip(1)),
    Case("audio-dataset-skip-counted", _audio_folder, lambda d: _count_skips(AudioDataset([(str(d / "bad.wav"), 0), (str(d / "good.wav"), 1)], on_error="skip")), Skip(1)),
    # 5. audio-stats
    Case("stats-silent", _silent, lambda d: compute_audio_stats(d, progress=False), Error(ValueError, ("silent", "std"))),
    Case("stats-silent-padded", _silent, lambda d: compute_audio_stats(d, target_length=64, progress=False), Error(ValueError, ("silent",))),
    Case("cli-stats-unreadable", _audio_folder, lambda d: _cli(["audio-stats", str(d)]), Error(CliFailure, ("bad.wav", "--skip-errors"))),
    Case("cli-stats-skip-errors", _audio_folder, lambda d: len(_cli(["audio-stats", str(d), "--skip-errors"])["skipped"]), Skip(1)),
    # 6. lists
    Case("audio-list-negative-label", _list("a.wav 0\nb.wav -1\n", "a.wav", "b.wav"), read_audio_list, Error(AudioListError, ("list.txt:2", "-1"))),
    Case("video-list-negative-label", _list("a.mp4 0\nb.mp4 -1\n", "a.mp4", "b.mp4"), read_video_list, Error(VideoListError, ("list.txt:2", "-1"))),
    Case("audio-list-spaces-no-label", _list("my one.wav\n", "my one.wav"), read_audio_list, Error(AudioListError, ("list.txt:1", "no label"))),
    Case("video-list-spaces-no-label", _list("x.mp4 1\nmy one.mp4\n", "x.mp4", "my one.mp4"), read_video_list, Error(VideoListError, ("list.txt:2", "no label"))),
    Case("audio-list-tab-and-spaces", _tab_list, read_audio_list, Ok()),
    Case("points-items-negative-label", _negative_items, lambda d: PointCloudDataset([(str(d / "cloud.txt"), -1)]), Error(ValueError, ("cloud.txt", "-1"))),
    Case("audio-items-negative-label", _negative_items, lambda d: AudioDataset([(str(d / "clip.wav"), -1)]), Error(ValueError, ("clip.wav", "-1"))),
    # 7. tokenizer input dtypes
    Case("image-tok-float64", _tok(_image_tok, (2, 3, 8, 8), torch.float64), _tokenize, Ok(1e-6)),
    Case("image-tok-float16", _tok(_image_tok, (2, 3, 8, 8), torch.float16), _tokenize, Ok(1e-6)),
    Case("audio-tok-float64", _tok(_audio_tok, (2, 1, 16, 16), torch.float64), _tokenize, Ok(1e-6)),
    Case("video-tok-float64", _tok(_video_tok, (2, 3, 4, 8, 8), torch.float64), _tokenize, Ok(1e-6)),
    Case("points-tok-float64", _tok(_points_tok, (2, 64, 3), torch.float64), _tokenize, Ok(1e-6)),
    Case("image-tok-int", _tok(_image_tok, (2, 3, 8, 8), torch.int64), _tokenize, Error(ValueError, ("floating-point", "int64"))),
    Case("points-tok-int", _tok(_points_tok, (2, 64, 3), torch.int32), _tokenize, Error(ValueError, ("floating-point", "int32"))),
]  # fmt: skip


def matrix_totals() -> dict[str, int]:
    """How many cases the matrix holds per expected outcome class."""
    totals = {"ok": 0, "error": 0, "skip": 0}
    for case in CASES:
        totals[type(case.expected).__name__.lower()] += 1
    return totals


def judge(case: Case, tmp_path: Path) -> tuple[str, str]:
    """``("correct" | "garbage" | "unhelpful", detail)`` for one run of ``case``."""
    expected = case.expected
    arg, ref = case.make(tmp_path)
    try:
        got = case.call(arg)
    except Exception as e:  # noqa: BLE001 - any exception is judged, not propagated
        text = str(e)
        if isinstance(expected, Error) and isinstance(e, expected.type):
            missing = [n for n in expected.needles if n.lower() not in text.lower()]
            if not missing:
                return "correct", ""
            return "unhelpful", f"{type(e).__name__} lacks {missing}: {text[:300]}"
        return "unhelpful", f"{type(e).__name__}: {text[:300]}"
    if isinstance(expected, Error):
        return "garbage", f"returned {type(got).__name__} instead of raising {expected.type.__name__}"
    if isinstance(expected, Skip):
        return ("correct", "") if got == expected.count else ("garbage", f"counted {got} skips, not {expected.count}")
    return ("correct", "") if _same(got, ref, expected.atol) else ("garbage", "differs from the reference")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_matrix(case: Case, tmp_path: Path) -> None:
    verdict, detail = judge(case, tmp_path)
    assert verdict == "correct", f"{case.id}: {verdict}: {detail}"


def test_matrix_is_complete() -> None:
    totals = matrix_totals()
    assert sum(totals.values()) == len(CASES) == len({c.id for c in CASES})
    assert all(n > 0 for n in totals.values())


if __name__ == "__main__":  # the before/after totals: python tests/test_bad_inputs_data.py
    import logging
    import tempfile

    logging.disable(logging.WARNING)
    table: dict[str, dict[str, int]] = {}
    for c in CASES:
        with tempfile.TemporaryDirectory() as d:
            verdict, detail = judge(c, Path(d))
        table.setdefault(type(c.expected).__name__.lower(), {}).setdefault(verdict, 0)
        table[type(c.expected).__name__.lower()][verdict] += 1
        print(f"{c.id:32s} {verdict:10s} {detail[:140]}".rstrip(), flush=True)
    print(json.dumps({"cases": matrix_totals(), "verdicts": table}), os.linesep.strip())
