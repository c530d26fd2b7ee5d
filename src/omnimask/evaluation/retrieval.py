"""Cross-modal retrieval metrics: image -> text and text -> image recall at K.

Features are compared by cosine similarity. One image may have several captions: ``text_to_image``
maps every text to the index of its image.

* image -> text: for each image, the texts ranked by similarity; a hit at K when any of its own
  captions is among the first K.
* text -> image: for each text, the images ranked; a hit at K when its image is among the first K.

Ties count against the query: an item's rank is the number of *other* candidates scoring at least
as high as the best correct one, so a constant (uninformative) feature never scores a hit by the
order the candidates happen to be in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["retrieval_recall", "compare_retrieval", "masked_token_accuracy", "pooled_features"]


def _check(image: Tensor, text: Tensor, text_to_image: Tensor) -> None:
    if image.ndim != 2 or text.ndim != 2 or image.shape[1] != text.shape[1]:
        raise ValueError(
            f"retrieval: expected (I, D) image and (T, D) text features, got {tuple(image.shape)} and {tuple(text.shape)}"
        )
    if text_to_image.shape != (text.shape[0],):
        raise ValueError(
            f"retrieval: text_to_image must give one image index per text ({text.shape[0]}), got shape {tuple(text_to_image.shape)}"
        )
    if text_to_image.numel() and (int(text_to_image.min()) < 0 or int(text_to_image.max()) >= image.shape[0]):
        raise ValueError(f"retrieval: text_to_image holds indices outside 0..{image.shape[0] - 1}")
    missing = sorted(set(range(image.shape[0])) - set(text_to_image.tolist()))
    if missing:
        raise ValueError(f"retrieval: image(s) {missing[:10]} have no caption among the texts")


@torch.no_grad()
def retrieval_recall(
    image: Tensor, text: Tensor, text_to_image: Tensor, ks: Sequence[int] = (1, 5, 10), median: bool = False
) -> dict[str, float]:
    """Recall at each K in both directions, in %.

    Args:
        image: (I, D) image features; text: (T, D) text features (any scale: cosine similarity).
        text_to_image: (T,) long, the image index of every text.
        median: also the median rank of the first correct match, 1-based (``i2t_MedR``, ``t2i_MedR``).

    Returns:
        ``{"i2t_R@1": ..., "t2i_R@1": ..., ...}`` for every K in ``ks``.
    """
    text_to_image = torch.as_tensor(text_to_image, dtype=torch.long)
    _check(image, text, text_to_image)
    sim = F.normalize(image.double(), dim=-1) @ F.normalize(text.double(), dim=-1).T  # (I, T)
    own = text_to_image.unsqueeze(0) == torch.arange(image.shape[0]).unsqueeze(1)  # (I, T) correct pairs
    best = sim.masked_fill(~own, float("-inf")).amax(dim=1, keepdim=True)  # best correct caption per image
    i2t_rank = ((sim >= best) & ~own).sum(1)  # wrong captions scoring at least as high
    t_score = sim.gather(0, text_to_image.unsqueeze(0)).squeeze(0)  # (T,) score of each text's own image
    t2i_rank = (sim >= t_score.unsqueeze(0)).sum(0) - 1  # other images scoring at least as high
    out = {}
    for k in ks:
        out[f"i2t_R@{k}"] = 100.0 * float((i2t_rank < k).double().mean())
        out[f"t2i_R@{k}"] = 100.0 * float((t2i_rank < k).double().mean())
    if median:
        out["i2t_MedR"] = float((i2t_rank + 1).double().quantile(0.5))  # the mean of the middle two for an even count
        out["t2i_MedR"] = float((t2i_rank + 1).double().quantile(0.5))
    return out


@torch.no_grad()
def pooled_features(encoder: torch.nn.Module, key: str, x: Tensor, batch: int = 256) -> Tensor:
    """Mean-pooled encoder features of one modality fed alone (padding excluded for text)."""
    encoder.eval()
    return torch.cat([encoder({key: x[i : i + batch]}).pooler_output for i in range(0, len(x), batch)])


def compare_retrieval(
    encoders: dict[str, torch.nn.Module],
    images: Tensor,
    texts: Tensor,
    image_key: str = "image",
    text_key: str = "text",
    ks: Sequence[int] = (1, 5, 10),
    median: bool = False,
) -> dict[str, dict[str, float]]:
    """Image <-> text retrieval recall for each encoder on pairs ``(images[i], texts[i])``: each
    modality is encoded alone and mean-pooled, and the pairs are matched by cosine similarity
    (any two modalities: ``image_key``/``text_key`` name the first and the second; ``median``
    adds the median ranks)."""
    pairs = torch.arange(len(texts))
    return {
        name: retrieval_recall(
            pooled_features(enc, image_key, images), pooled_features(enc, text_key, texts), pairs, ks, median
        )
        for name, enc in encoders.items()
    }


@torch.no_grad()
def masked_token_accuracy(
    model: torch.nn.Module,
    key: str,
    texts: Tensor,
    seed: int = 0,
    batch: int = 256,
    context: dict[str, Tensor] | None = None,
) -> float:
    """Share (in %) of hidden real tokens a pretraining model predicts exactly, masks drawn by the
    model's own strategies from ``seed``. The text is fed alone, or with ``context`` (e.g.
    ``{"image": images}``, masked by the image's own strategy): the gain is what the other
    modality tells the model about the caption."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    hits = total = 0
    for i in range(0, len(texts), batch):
        x = texts[i : i + batch]
        extra = {k: v[i : i + batch] for k, v in (context or {}).items()}
        out = model({key: x, **extra}, generator=g)
        spec, counted = out.specs[key], out.loss_mask[key]  # hidden real tokens, as the loss counts them
        ids = x if spec.ids_decode is None else torch.gather(x, 1, spec.ids_decode)
        hits += int(((out.pred[key].argmax(-1) == ids) & counted).sum())
        total += int(counted.sum())
    return 100.0 * hits / max(total, 1)
