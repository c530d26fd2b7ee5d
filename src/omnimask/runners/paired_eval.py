"""Held-out evaluation of a model trained on paired data (two modalities per sample).

For the pretrained model and the same model at random init (the one pretraining started from):

* retrieval both ways: each modality encoded alone (visible = every token), mean-pooled, matched by
  cosine similarity: R@1/5/10 and the median rank (``MedR``, 1 = always first);
* masked-token accuracy for a modality predicted as tokens (cross-entropy objective: captions),
  alone and with the other modality as context;
* a linear probe on the joint features (both modalities encoded together, mean-pooled) when the
  samples carry labels: logistic regression fitted on the training split, top-1 on held-out.

Retrieval directions are named by the keys' first letters when they differ (``i2t``/``t2i`` for
image and text, ``a2i``/``i2a`` for audio and image), else by the keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..evaluation import compare_retrieval, masked_token_accuracy
from ..evaluation.classification import _probe
from ..model_config import OmniMaskConfig
from ..models import OmniMaskForPreTraining

__all__ = ["evaluate_pairs", "direction_names"]


def direction_names(a: str, b: str) -> tuple[str, str]:
    """``("i2t", "t2i")`` for ``image``/``text``; ``("a_to_b", "b_to_a")`` when the initials clash."""
    return (f"{a[0]}2{b[0]}", f"{b[0]}2{a[0]}") if a[0] != b[0] else (f"{a}_to_{b}", f"{b}_to_{a}")


def _stack(items: list[dict], key: str) -> Tensor:
    return torch.stack([it[key] for it in items])


@torch.no_grad()
def _joint_features(model: Any, xs: dict[str, Tensor], batch: int = 128) -> Tensor:
    model.eval()
    n = len(next(iter(xs.values())))
    return torch.cat([model({k: v[i : i + batch] for k, v in xs.items()}).pooler_output for i in range(0, n, batch)])


def evaluate_pairs(
    config: OmniMaskConfig, final: Path, val_items: list[dict], keys: tuple[str, ...], seed: int,
    train_items: list[dict] | None = None,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """``{"pretrained (omnimask)": {...}, "random init": {...}}`` (see the module notes)."""
    a, b = keys
    xa, xb = _stack(val_items, a), _stack(val_items, b)
    # The model pretraining started from (built first under the run seed), built before loading the
    # pretrained one: from_pretrained draws from the global RNG too.
    torch.manual_seed(seed)
    initial = OmniMaskForPreTraining(config).eval()
    models = {"pretrained (omnimask)": OmniMaskForPreTraining.from_pretrained(final), "random init": initial}
    labelled = train_items is not None and "label" in val_items[0] and "label" in train_items[0]
    if labelled:  # the probe's data, the same for both models
        tr = {k: _stack(train_items, k) for k in keys}  # type: ignore[arg-type]
        ytr = torch.tensor([int(it["label"]) for it in train_items])  # type: ignore[union-attr]
        yva = torch.tensor([int(it["label"]) for it in val_items])
    ab, ba = direction_names(a, b)
    recalls = compare_retrieval({n: m.omnimask for n, m in models.items()}, xa, xb, a, b, median=True)
    report: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        r = {k.replace("i2t", ab).replace("t2i", ba): v for k, v in recalls[name].items()}
        for k, other, x, ctx in ((b, a, xb, xa), (a, b, xa, xb)):
            if config.modalities[k]["objective"]["name"] == "cross_entropy":  # tokens: how many it restores
                r["masked_token_acc"] = masked_token_accuracy(model, k, x, seed=seed)
                r[f"masked_token_acc_with_{other}"] = masked_token_accuracy(
                    model, k, x, seed=seed, context={other: ctx}
                )
        if labelled:
            r["joint_probe"] = _probe(_joint_features(model.omnimask, tr), ytr,
                                      _joint_features(model.omnimask, {a: xa, b: xb}), yva)  # fmt: skip
        report[name] = r
    _print(report, a, b, len(val_items))
    return report


def _print(report: dict[str, dict[str, float]], a: str, b: str, n: int) -> None:
    print(f"\nHeld-out evaluation on {n} {a}-{b} pairs (retrieval: each modality encoded alone, mean-pooled, cosine):")
    cols = list(next(iter(report.values())))
    print(f"  {'model':<24}" + "".join(f"{c:>{max(len(c) + 2, 10)}}" for c in cols))
    for name, r in report.items():
        cells = "".join(
            f"{r[c]:>{max(len(c) + 2, 10)}.1f}" if "MedR" in c else f"{r[c]:>{max(len(c) + 1, 9)}.1f}%" for c in cols
        )
        print(f"  {name:<24}{cells}")
