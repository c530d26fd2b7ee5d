"""Issue-5 pieces that know no modality: SpanBERT-style span masking and retrieval recall."""

import pytest
import torch

from omnimask.evaluation import retrieval_recall
from omnimask.masking import MASKING
from omnimask.masking.span import SpanMasking


def test_span_lengths_follow_the_clipped_geometric_law():
    strategy = SpanMasking(ratio=0.15, p=0.2, max_span=10)
    lengths = strategy.span_lengths(40000, torch.Generator().manual_seed(0))
    assert int(lengths.min()) >= 1 and int(lengths.max()) <= 10
    expected = torch.tensor([0.2 * 0.8 ** (k - 1) for k in range(1, 11)], dtype=torch.float64)
    expected /= expected.sum()
    observed = torch.bincount(lengths - 1, minlength=10).double() / len(lengths)
    assert (observed - expected).abs().max() < 0.01
    assert abs(float(lengths.double().mean()) - float((expected * torch.arange(1, 11)).sum())) < 0.05  # ~3.8 (SpanBERT)


def test_span_masks_hide_the_exact_budget_in_contiguous_runs():
    strategy = MASKING.build("span", {"ratio": 0.5, "p": 0.3, "max_span": 4})
    spec = strategy(64, (40,), generator=torch.Generator().manual_seed(1))
    assert spec.mask.sum(1).tolist() == [20] * 64  # int(40 * 0.5), every sample
    runs = []
    for row in spec.mask.int().tolist():
        run = 0
        for v in row + [0]:
            if v:
                run += 1
            elif run:
                runs.append(run)
                run = 0
    assert max(runs) > 1 and sum(runs) / len(runs) > 1.5  # spans, not single tokens
    again = strategy(64, (40,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.mask, spec.mask)
    with pytest.raises(ValueError, match="max_span"):
        SpanMasking(max_span=0)


def test_retrieval_recall_on_a_constructed_case():
    # 4 images, 6 captions: image 0 has captions 0 and 1, image 1 has 2, image 2 has 3 and 4, image 3 has 5.
    text_to_image = torch.tensor([0, 0, 1, 2, 2, 3])
    image = torch.eye(4)
    text = torch.eye(4)[text_to_image].clone()
    assert retrieval_recall(image, text, text_to_image, ks=(1,)) == {"i2t_R@1": 100.0, "t2i_R@1": 100.0}
    # captions 2 and 5 lean towards each other's image: each of them and each of images 1 and 3
    # finds the wrong partner first (rank 2), everything else stays first
    text[2] = torch.tensor([0.0, 0.6, 0.0, 0.8])
    text[5] = torch.tensor([0.0, 0.8, 0.0, 0.6])
    r = retrieval_recall(image, text, text_to_image, ks=(1, 2))
    assert r["t2i_R@1"] == pytest.approx(100 * 4 / 6) and r["t2i_R@2"] == 100.0
    assert r["i2t_R@1"] == pytest.approx(50.0) and r["i2t_R@2"] == 100.0
    # constant features: every candidate ties, and ties count against the query
    flat = retrieval_recall(torch.ones(4, 3), torch.ones(6, 3), text_to_image, ks=(1, 5))
    assert flat["t2i_R@1"] == 0.0 and flat["i2t_R@1"] == 0.0 and flat["t2i_R@5"] == 100.0
    with pytest.raises(ValueError, match="no caption"):
        retrieval_recall(image, text[:2], text_to_image[:2])
    with pytest.raises(ValueError, match="one image index per text"):
        retrieval_recall(image, text, text_to_image[:3])
