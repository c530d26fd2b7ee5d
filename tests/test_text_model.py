"""The text modality in the shared core: padding never attended, hidden or counted; BERT-style
replacement with the MLP head; decoders reading a chosen block; image + text with per-modality
ratios and loss weights."""

import pytest
import torch
import torch.nn.functional as F

from omnimask import OmniMaskConfig, OmniMaskForPreTraining, OmniMaskModel
from omnimask.objectives.cross_entropy import MaskedCrossEntropy

V, L = 50, 12


def text_cfg(**text) -> dict:
    return {
        "encoder": {"dim": 32, "depth": 3, "num_heads": 2},
        "modalities": {
            "text": {
                "tokenizer": {"vocab_size": V, "max_length": L},
                "decoder": {"dim": 16, "depth": 1, "num_heads": 2},
                **text,
            }
        },
    }


def ids_with_padding(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (len(lengths), L), generator=g)
    for b, n in enumerate(lengths):
        ids[b, n:] = 0
    return ids


def test_masking_hides_real_tokens_and_the_loss_ignores_padding():
    model = OmniMaskForPreTraining(OmniMaskConfig(**text_cfg(masking={"name": "random", "ratio": 0.5}))).eval()
    ids = ids_with_padding([12, 9, 6, 2])
    out = model({"text": ids}, generator=torch.Generator().manual_seed(0))
    mask, valid = out.mask["text"], ids != 0
    hidden = mask.sum(1)
    assert hidden.tolist() == [6, 6, 6, 6]  # int(12 * 0.5) per row, every row
    assert not (mask & ~valid)[:3].any()  # enough real tokens: only real tokens are hidden
    assert (mask & valid)[3].sum() == 2  # a 2-token caption: both hidden, the rest falls on padding
    # the loss is the cross-entropy over hidden real tokens only
    counted = mask & valid
    expected = F.cross_entropy(out.pred["text"][counted], ids[counted])
    assert torch.allclose(out.loss, expected, atol=1e-6)


def test_padding_does_not_change_the_real_tokens_outputs():
    model = OmniMaskModel(OmniMaskConfig(**text_cfg())).eval()
    short = ids_with_padding([5, 3])[:, :8]
    long = torch.cat([short, torch.zeros(2, 4, dtype=torch.long)], 1)  # 4 more padding positions
    a, b = model({"text": short}), model({"text": long})
    assert torch.allclose(a.hidden["text"][:, :3], b.hidden["text"][:, :3], atol=1e-5)
    assert torch.allclose(a.pooler_output, b.pooler_output, atol=1e-5)  # the mean skips padding
    empty = torch.zeros(1, L, dtype=torch.long)  # an empty caption: all padding, still finite
    assert torch.isfinite(model({"text": empty}).last_hidden_state).all()
    pre = OmniMaskForPreTraining(OmniMaskConfig(**text_cfg()))
    assert torch.isfinite(pre({"text": torch.cat([empty, ids_with_padding([4])])}).loss)


def test_replace_mode_feeds_the_mask_symbol_to_the_encoder_and_the_mlp_head_reads_it():
    cfg = text_cfg(
        encoder_mask="replace", decoder={"name": "mlp"}, masking={"name": "span", "ratio": 0.25, "max_span": 3}
    )
    model = OmniMaskForPreTraining(OmniMaskConfig(**cfg))
    seen = []
    model.omnimask.encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    ids = ids_with_padding([12, 10])
    out = model({"text": ids})
    assert seen == [1 + L]  # [CLS] + every position: nothing dropped
    assert out.pred["text"].shape == (2, L, V) and out.mask["text"].sum(1).tolist() == [3, 3]
    out.loss.backward()
    assert model.decoders["text"].pred.weight.grad is not None
    tok = model.omnimask.tokenizers["text"]
    replaced = tok.replace_hidden(ids, out.mask["text"])
    assert (replaced[out.mask["text"] & (ids != 0)] == tok.mask_id).all()
    with pytest.raises(ValueError, match="encoder_mask: replace"):
        OmniMaskForPreTraining(OmniMaskConfig(**text_cfg(decoder={"name": "mlp"})))({"text": ids})


def test_decoder_reads_the_chosen_encoder_block():
    model = OmniMaskForPreTraining(OmniMaskConfig(**text_cfg(decoder_layer=1))).eval()
    got, block_out = {}, {}
    model.decoders["text"].register_forward_pre_hook(lambda m, args, kw: got.update(x=args[0]), with_kwargs=True)
    model.omnimask.encoder.blocks[0].register_forward_hook(lambda m, a, o: block_out.update(x=o))
    model({"text": ids_with_padding([12, 12])}, generator=torch.Generator().manual_seed(1))
    assert torch.equal(got["x"], block_out["x"][:, 1:])  # after block 1, without [CLS], not normed
    with pytest.raises(ValueError, match="exceeds the encoder's 3 blocks"):
        OmniMaskForPreTraining(OmniMaskConfig(**text_cfg(decoder_layer=4)))({"text": ids_with_padding([3])})


def test_image_and_text_in_one_model_with_their_own_ratios_and_weights():
    cfg = {
        "encoder": {"dim": 32, "depth": 2, "num_heads": 2},
        "modalities": {
            "image": {
                "tokenizer": {"image_size": 16, "patch_size": 4},
                "masking": {"name": "random", "ratio": 0.75},
                "decoder": {"dim": 16, "depth": 1, "num_heads": 2},
                "loss_weight": 1.0,
            },
            "text": {
                "tokenizer": {"vocab_size": V, "max_length": L},
                "masking": {"name": "random", "ratio": 0.25},
                "decoder": {"dim": 16, "depth": 1, "num_heads": 2},
                "loss_weight": 0.5,
            },
        },
    }
    model = OmniMaskForPreTraining(OmniMaskConfig(**cfg))
    out = model({"image": torch.randn(2, 3, 16, 16), "text": ids_with_padding([12, 8])})
    assert out.mask["image"].sum(1).tolist() == [12, 12] and out.mask["text"].sum(1).tolist() == [3, 3]
    assert torch.allclose(out.loss, out.losses["image"] + 0.5 * out.losses["text"])


def test_cross_entropy_objective_and_accuracy_on_known_inputs():
    obj = MaskedCrossEntropy()
    pred = torch.log(torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]]))
    target = torch.tensor([[[0], [2], [2]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.allclose(obj(pred, target, mask), -(torch.log(torch.tensor(0.7)) + torch.log(torch.tensor(0.1))) / 2)
    assert obj.accuracy(pred, target, mask) == 0.5
    with pytest.raises(TypeError, match="integer"):
        obj(pred, target.float(), mask)


def test_text_input_errors_name_the_problem():
    model = OmniMaskModel(OmniMaskConfig(**text_cfg()))
    with pytest.raises(ValueError, match="integer token ids"):
        model({"text": torch.randn(1, 4)})
    with pytest.raises(ValueError, match="1..12"):
        model({"text": torch.ones(1, 13, dtype=torch.long)})
    with pytest.raises(ValueError, match="0..49"):
        model({"text": torch.full((1, 4), 50)})
