"""Weighted k-nearest-neighbour classification of frozen features (the DINO protocol).

Every feature is L2-normalised; a test sample's ``k`` most similar training samples (cosine
similarity) vote for their class with weight ``exp(similarity / temperature)``; the class with the
largest summed weight wins. No training, no hyper-parameter besides ``k`` and ``temperature``, so it
reads the geometry of the features directly (a linear probe can re-weight any direction).

``k`` must be at most the number of training samples: a larger ``k`` is a ValueError rather than
silently clamped, since ``k = 20`` on a 10-sample training set is a different classifier from the
one the caller asked for. Ties between classes go to the smaller class index (``argmax``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["knn_accuracy", "knn_predict"]


def _check(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor | None, k: int, temperature: float) -> None:
    if train_x.ndim != 2 or test_x.ndim != 2:
        raise ValueError(
            f"knn: expected (N, D) training and (M, D) test features, got {tuple(train_x.shape)} and {tuple(test_x.shape)}"
        )
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"knn: feature sizes differ: training {train_x.shape[1]}, test {test_x.shape[1]}")
    if train_y.shape != (train_x.shape[0],):
        raise ValueError(
            f"knn: train_y must hold one label per training row ({train_x.shape[0]}), got {tuple(train_y.shape)}"
        )
    if test_y is not None and test_y.shape != (test_x.shape[0],):
        raise ValueError(f"knn: test_y must hold one label per test row ({test_x.shape[0]}), got {tuple(test_y.shape)}")
    if k < 1:
        raise ValueError(f"knn: k must be at least 1, got {k}")
    if k > train_x.shape[0]:
        raise ValueError(f"knn: k={k} is larger than the training set ({train_x.shape[0]} samples)")
    if not temperature > 0:
        raise ValueError(f"knn: temperature must be positive, got {temperature}")
    if train_y.numel() and int(train_y.min()) < 0:
        raise ValueError(f"knn: labels must be non-negative class indices, got {int(train_y.min())}")


@torch.no_grad()
def knn_predict(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, k: int = 20, temperature: float = 0.07, batch: int = 1024
) -> Tensor:
    """Predicted class of every test row, shape (M,) long.

    Args:
        train_x: (N, D) training features; train_y: (N,) integer class labels.
        test_x: (M, D) test features (any scale: both sides are L2-normalised).
        k: neighbours that vote (1 <= k <= N); temperature: the vote weight is ``exp(sim / temperature)``.
        batch: test rows compared at once (the similarity block is (batch, N)).
    """
    _check(train_x, train_y, test_x, None, k, temperature)
    train = F.normalize(train_x.double(), dim=1)
    labels = train_y.long()
    classes = int(labels.max()) + 1 if labels.numel() else 0
    preds = []
    for i in range(0, test_x.shape[0], batch):
        sim = F.normalize(test_x[i : i + batch].double(), dim=1) @ train.T  # (b, N) cosine similarity
        top_sim, top_idx = sim.topk(k, dim=1)  # (b, k)
        votes = torch.zeros(sim.shape[0], classes, dtype=torch.float64)
        # Subtracting each row's largest similarity scales a row's weights alike (no overflow).
        weights = ((top_sim - top_sim[:, :1]) / temperature).exp()
        votes.scatter_add_(1, labels[top_idx], weights)
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def knn_accuracy(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, k: int = 20, temperature: float = 0.07
) -> float:
    """Top-1 accuracy (in %) of the weighted kNN vote (see the module notes) on ``(test_x, test_y)``.

    Raises:
        ValueError: features not 2-D or of different widths, a label count that does not match
            its rows, ``k < 1``, ``k`` larger than the training set, a non-positive temperature.
    """
    _check(train_x, train_y, test_x, test_y, k, temperature)
    if test_x.shape[0] == 0:
        raise ValueError("knn: the test set is empty")
    pred = knn_predict(train_x, train_y, test_x, k, temperature)
    return 100.0 * float((pred == test_y.long()).double().mean())
