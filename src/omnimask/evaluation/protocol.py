"""The held-out protocol run on every encoder: kNN, linear probes and few-label fine-tuning.

Every encoder goes through the same label subsets and seeds, so the difference between two
encoders (pretrained and random init) is the encoders. Few-label numbers are reported per subset
and as mean and sample standard deviation over the subsets, so a gain can be read against the
spread a different draw of labels gives.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..model_config import OmniMaskConfig
from ..models.encoder_model import OmniMaskModel
from .classification import (
    EvalConfig,
    accuracy,
    extract_features,
    few_label_subset,
    finetune_classifier,
    logistic_probe_accuracy,
)
from .knn import knn_accuracy
from .stats import mean_std

__all__ = ["compare_encoders", "random_encoder", "REPORT_METRICS"]

#: The headline numbers of a report entry, in display order: ``(key, title)``; ``{k}`` is the
#: number of labels per class. A few-label ``key`` has ``key[:-5] + "_std"`` beside it.
REPORT_METRICS = (
    ("knn", "kNN, all labels"),
    ("probe_all", "probe, all labels"),
    ("probe_few_mean", "probe, {k}/class"),
    ("finetune_mean", "fine-tune, {k}/class"),
)


def random_encoder(config: OmniMaskConfig, seed: int) -> OmniMaskModel:
    """The encoder a pretraining run with ``train.seed = seed`` started from (the pretraining model
    builds its encoder first, right after the runner seeds torch): the random-init baseline."""
    torch.manual_seed(seed)
    return OmniMaskModel(config).eval()


def _with_spread(entry: dict[str, Any], key: str, values: list[float]) -> None:
    entry[key] = values
    entry[f"{key}_mean"], entry[f"{key}_std"] = mean_std(values)


def compare_encoders(
    encoders: dict[str, OmniMaskModel],
    modality: str,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    cfg: EvalConfig,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run the protocol on every encoder with the same label subsets and seeds.

    Args:
        train: (X, y) of the labelled training split; val: (X, y) held out.

    Returns:
        ``{name: entry}`` with, as configured (accuracies in %):

        * ``knn`` (``cfg.knn``): weighted kNN, every training label;
        * ``probe_all``, ``probe_few`` (per subset), ``probe_few_mean``, ``probe_few_std``
          (``cfg.linear_probe``);
        * ``finetune`` (per subset), ``finetune_mean``, ``finetune_std``, and ``finetune_train``
          (per subset) / ``finetune_train_mean``: top-1 on the subset it was trained on, which
          says whether the run fitted its labels (``cfg.finetune``).
    """
    report: dict[str, dict[str, Any]] = {}
    subsets = [few_label_subset(train[1], cfg.labels_per_class, cfg.seed + r) for r in range(cfg.repeats)]
    num_classes = int(max(int(train[1].max()), int(val[1].max())) + 1)
    for name, enc in encoders.items():
        entry: dict[str, Any] = {}
        if cfg.knn or cfg.linear_probe:
            ftr = extract_features(enc, modality, train[0], cfg.probe_features)
            fva = extract_features(enc, modality, val[0], cfg.probe_features)
            if cfg.knn:  # k capped at the training-set size (see EvalConfig.knn_k)
                entry["knn"] = knn_accuracy(ftr, train[1], fva, val[1], min(cfg.knn_k, len(ftr)), cfg.knn_temperature)
            if cfg.linear_probe:
                entry["probe_all"] = logistic_probe_accuracy(ftr, train[1], fva, val[1])
                few = [logistic_probe_accuracy(ftr[idx], train[1][idx], fva, val[1]) for idx in subsets]
                _with_spread(entry, "probe_few", few)
        if cfg.finetune:
            fitted, held_out = [], []
            for r, idx in enumerate(subsets):
                part = (train[0][idx], train[1][idx])
                desc = f"{name}: fine-tune {r + 1}/{cfg.repeats}"
                model = finetune_classifier(enc, modality, part, num_classes, cfg, cfg.seed + r, progress, desc)
                device = next(model.parameters()).device
                held_out.append(accuracy(model.logits, val, device))
                fitted.append(accuracy(model.logits, part, device))
            _with_spread(entry, "finetune", held_out)
            entry["finetune_train"], entry["finetune_train_mean"] = fitted, mean_std(fitted)[0]
        report[name] = entry
    return report
