"""``omnimask audio-stats``: the filterbank mean/std of a dataset, for ``processor.mean/std``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ...commands import Command, register_command
from .features import AudioReadError
from .stats import compute_audio_stats

__all__: list[str] = []


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a .json list, a <path> <label> list file, or a folder of audio files")
    p.add_argument("--sample-rate", type=int, default=16000, help="clips are resampled to this rate (default 16000)")
    p.add_argument("--num-mel-bins", type=int, default=128, help="mel bins (default 128)")
    p.add_argument(
        "--target-length", type=int, default=None, help="pad/cut to this many frames first, as training does"
    )
    p.add_argument("--root", default=None, help="folder relative paths resolve against (default: the list's folder)")
    p.add_argument("--max-clips", type=int, default=None, help="use at most this many clips, evenly spaced")
    p.add_argument(
        "--skip-errors", action="store_true", help="leave unreadable clips out (they are listed) instead of stopping"
    )
    p.add_argument("--out", default=None, help="also write the JSON here")


def _run(args: argparse.Namespace) -> int:
    try:
        stats = compute_audio_stats(
            args.source,
            sample_rate=args.sample_rate,
            num_mel_bins=args.num_mel_bins,
            target_length=args.target_length,
            root=args.root,
            max_clips=args.max_clips,
            on_error="skip" if args.skip_errors else "raise",
            progress=True,
        )
    except AudioReadError as err:  # one line from the CLI (it prints ValueErrors), not a traceback
        # a data error (exit 3), on one line, with the way round it
        raise AudioReadError(f"{err}; pass --skip-errors to leave unreadable clips out (they are listed)") from None
    text = json.dumps(stats, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    print(
        f"\nfor a recipe: model.modalities.audio.processor='{{mean: [{stats['mean']:.7g}], "
        f"std: [{2 * stats['std']:.7g}], sample_rate: {args.sample_rate}}}'   (std doubled: AudioMAE divides by 2 * std)",
        file=sys.stderr,
    )
    return 0


register_command(
    Command(
        name="audio-stats",
        help="filterbank mean/std of an audio list (AudioMAE JSON, <path> <label> list or folder)",
        add_arguments=_add_arguments,
        run=_run,
    )
)
