"""Captions of the embedded digits: colour names, facts about a digit image, templates and the
caption corpus the shipped sentencepiece model is trained on."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...data.embedded import _COLOUR_SEED, _colours, load_digits_source, stratified_split

__all__ = ["DIGIT_WORDS", "caption_corpus", "colour_name", "digit_captions", "digit_facts"]


_CAPTION_SEED = 3391
DIGIT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# (upper hue bound in degrees, name); red wraps around 360.
_HUES = ((12, "red"), (40, "orange"), (65, "yellow"), (95, "lime"), (150, "green"), (175, "teal"), (200, "cyan"),
         (235, "blue"), (265, "indigo"), (290, "violet"), (320, "magenta"), (345, "pink"), (361, "red"))  # fmt: skip
_DARK_NAMES = {"orange": "brown", "yellow": "olive"}  # what a dark orange or yellow looks like
_GREYS = ((0.12, "black"), (0.45, "dark grey"), (0.8, "grey"), (0.93, "light grey"), (1.01, "white"))
# Thresholds on the 8x8 source digit (grey levels / 16), set from the 1797 digits' distribution:
# total ink below 17.5 is the lightest ~20 %, above 21.5 the heaviest ~18 %.
_THIN_INK, _THICK_INK = 17.5, 21.5


def colour_name(rgb: Sequence[float] | np.ndarray) -> str:
    """A plain English name for an RGB colour in 0..255: a grey level (``"black"`` .. ``"white"``)
    for unsaturated colours, else one of twelve hues, prefixed ``"dark"`` (value < 0.3; a dark
    orange is ``"brown"``, a dark yellow ``"olive"``) or ``"pale"`` (bright and unsaturated),
    e.g. ``"dark blue"``, ``"pale orange"``, ``"green"``."""
    h, s, v = colorsys.rgb_to_hsv(*(np.asarray(rgb, dtype=np.float64) / 255.0))
    if s < 0.12 or v < 0.08:
        return next(name for top, name in _GREYS if v < top)
    hue = next(name for top, name in _HUES if h * 360.0 < top)
    if v < 0.3:
        return _DARK_NAMES.get(hue, f"dark {hue}")
    return f"pale {hue}" if v > 0.8 and s < 0.45 else hue


def digit_facts(digit: np.ndarray, label: int, index: int) -> dict[str, Any]:
    """What a caption may say about embedded sample ``index``: its class, the image part's colours
    for it (the pair :func:`omnimask.data.embedded.render_digit` draws, named by
    :func:`colour_name`), which of the two is lighter, stroke weight (total ink), width (inked
    columns) and where the ink's centre of mass sits (``place``: ``""`` = the middle).

    Args:
        digit: (8, 8) grey levels 0..16 (the source of the image).
        label: its class 0..9.
        index: its sample index (seeds the colours, as in the image part).
    """
    bg, ink = _colours(np.random.default_rng([_COLOUR_SEED, index]))
    a = digit.astype(np.float64) / 16.0
    total = a.sum()
    rows, cols = np.mgrid[0:8, 0:8]
    cx, cy = (a * cols).sum() / total, (a * rows).sum() / total
    inked = np.flatnonzero(a.max(axis=0) > 0.25)
    width = inked[-1] - inked[0] + 1
    horizontal = "left" if cx < 3.2 else "right" if cx > 3.95 else ""
    vertical = "top" if cy < 3.0 else "bottom" if cy > 4.0 else ""
    light_ink = colorsys.rgb_to_hsv(*(ink / 255.0))[2] > colorsys.rgb_to_hsv(*(bg / 255.0))[2]
    return {
        "label": int(label), "name": DIGIT_WORDS[label], "ink": colour_name(ink), "background": colour_name(bg),
        "scheme": "light-on-dark" if light_ink else "dark-on-light",
        "stroke": "thin" if total < _THIN_INK else "thick" if total > _THICK_INK else "medium",
        "width": "narrow" if width <= 4 else "wide" if width >= 7 else "regular-width",
        "place": " ".join(w for w in (vertical, horizontal) if w),
    }  # fmt: skip


def _an(phrase: str) -> str:
    """``phrase`` with its indefinite article ("an eight", "a one", "an 8", "a pale red")."""
    vowel = phrase[0] in "aeiou8" and not phrase.startswith(("one", "uni", "use"))
    return ("an " if vowel else "a ") + phrase


# Word choices drawn per caption; each {field} of a template names one of them or a fact.
_SYNONYMS = {
    "hand": ("handwritten", "hand-drawn", "hand-written", "scribbled"),
    "noun": ("digit", "number", "numeral"),
    "picture": ("image", "picture", "photo", "scan", "thumbnail", "tile"),
    "ground": ("background", "backdrop"),
    "lines": ("strokes", "lines", "pen strokes"),
    "sits": ("sits", "is placed", "lies", "appears"),
    "towards": ("towards the", "near the", "close to the"),
    "middle": ("in the middle", "in the centre", "in the center", "centred"),
    "thin": ("thin", "fine", "light"),
    "medium": ("medium", "regular", "even"),
    "thick": ("thick", "bold", "heavy"),
    "dark": ("dark", "deep"),
    "pale": ("pale", "light", "pastel"),
}
# Phrases (no final period) and sentences; several are multi-sentence.
_TEMPLATES: tuple[str, ...] = (
    "{a_hand} {name} in {ink} on {a_background} {ground}",
    "The {noun} {d}. It is drawn with {stroke} {lines}.",
    "{a_scheme} {picture} of the {noun} {name}",
    "{hand} {noun} {d}, {ink} on {background}",
    "{A_background} square with the {noun} {d} on it. The {d} is {ink} and {width}.",
    "This {picture} shows {a_name}. The {ground} is {background} and the ink is {ink}. The {noun} {sits} {position}.",
    "{a_width} {name} with {stroke} {lines}",
    "{noun}: {d}. ink: {ink}. {ground}: {background}.",
    "Someone wrote the {noun} {name} in {ink}; it {sits} {position}.",
    "{a_name} ({d}) drawn in {ink} over {background}",
    "A small, slightly noisy {picture} of {a_hand} {d}. The {lines} are {stroke} and {ink}.",
    "{ink} ink, {background} {ground}: the {noun} {name}",
    "the {noun} {name}, written by hand in {ink} and placed {position}",
    "It is {a_name}. It is {ink} on {background}, {width}, with {stroke} {lines}. It {sits} {position}.",
    "What is shown? {A_name}. Which colours? {ink} on {background}.",
    "Written in {ink}, {a_name} stands out against {a_background} {ground}.",
    "close-up of {a_hand} {name}, {scheme}",
    "Tiny {picture}: {a_scheme} {noun} {d}. Its {lines} are {stroke}, and it {sits} {position}.",
    "the {noun} {name} in {ink}, {width}, with {stroke} {lines}",
    "{A_picture} of {a_width} {hand} {d}. The colours are {ink} for the {noun} and {background} for the {ground}.",
)


def _say_colour(name: str, words: dict[str, str]) -> str:
    shade, _, hue = name.partition(" ")
    return f"{words[shade]} {hue}" if shade in ("dark", "pale") and hue != "grey" else name


def digit_captions(digit: np.ndarray, label: int, index: int, count: int | None = None) -> list[str]:
    """3 to 5 different captions of embedded sample ``index`` (``count`` to fix how many).

    Distinct templates from a fixed list of 20 (phrases and sentences, some multi-sentence) are
    filled with :func:`digit_facts` and synonyms, all drawn from a generator seeded by ``index``,
    so the same sample always gets the same captions. Phrases are capitalised and given a final
    period half of the time. Plain ASCII, one line each.
    """
    rng = np.random.default_rng([_CAPTION_SEED, index])
    facts = digit_facts(digit, label, index)
    n = int(rng.integers(3, 6)) if count is None else count
    if not 1 <= n <= len(_TEMPLATES):
        raise ValueError(f"count must be in 1..{len(_TEMPLATES)}, got {count}")
    out = []
    for t in rng.choice(len(_TEMPLATES), size=n, replace=False):
        words = {k: str(rng.choice(v)) for k, v in _SYNONYMS.items()}
        f = {**facts, **words, "d": str(facts["label"]), "stroke": words[facts["stroke"]],
             "ink": _say_colour(facts["ink"], words), "background": _say_colour(facts["background"], words),
             "position": f"{words['towards']} {facts['place']}" if facts["place"] else words["middle"]}  # fmt: skip
        for key in ("hand", "name", "background", "scheme", "width", "picture"):
            f[f"a_{key}"] = _an(f[key])
            f[f"A_{key}"] = f[f"a_{key}"].capitalize()
        text = _TEMPLATES[t].format(**f)
        if not text.endswith(".") and rng.random() < 0.5:
            text = text[0].upper() + text[1:] + "."
        out.append(text)
    return out


def caption_corpus() -> list[str]:
    """Every caption of the embedded *train* split, in sample order: the lines of the captions
    part's ``corpus.txt`` and the corpus the shipped sentencepiece model is trained on."""
    images, labels = load_digits_source()
    is_val = stratified_split(labels)
    return [c for i in np.flatnonzero(~is_val) for c in digit_captions(images[i], int(labels[i]), int(i))]
