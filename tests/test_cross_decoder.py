"""CrossMAE's cross-attention decoder, partial decoding (``decode_ratio``) for any decoder, and the
encoder-layer mix: a plain-torch reference of the decoder, which positions are decoded and counted,
reproducible choices, and tiny image and audio models training with it."""

import math
from types import SimpleNamespace

import pytest
import torch

from omnimask import OmniMaskConfig, OmniMaskForPreTraining
from omnimask.decoders import DECODERS
from omnimask.decoders.cross import CrossAttentionDecoder
from omnimask.masking import spec_from_mask, spec_from_noise, with_decode
from omnimask.modalities import MODALITIES
from omnimask.models.decoding import decode_noise, decode_selection
from omnimask.registry import ConfigError

_IMAGE = {"image_size": 32, "patch_size": 8}  # 16 tokens of 192 values; 75 % masking hides 12


def _model(decoder: dict, depth: int = 2, key: str = "image", tokenizer: dict = _IMAGE) -> OmniMaskForPreTraining:
    decoder = {"dim": 16, "depth": 2, "num_heads": 2, **decoder}
    cfg = OmniMaskConfig(
        encoder={"dim": 32, "depth": depth, "num_heads": 2},
        modalities={key: {"tokenizer": tokenizer, "decoder": decoder}},
    )
    return OmniMaskForPreTraining(cfg)


def _noise(b: int = 3, n: int = 16) -> dict:
    return {"image": torch.rand(b, n, generator=torch.Generator().manual_seed(7))}


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- the decoder against a plain-torch reference ------------------------------------------------------
def _ln(x, norm):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def _lin(x, layer):
    return x @ layer.weight.T + (0 if layer.bias is None else layer.bias)


def _reference(dec, visible, spec, pos, global_tokens, other_tokens):
    """CrossMAE's decoder written out: queries = mask token + positions at ids_decode; per block
    softmax(QK^T / sqrt(c)) V per head from the normed queries to the normed keys/values, residuals, MLP."""
    x = dec.mask_token[0] + pos[spec.ids_decode]
    kv_in = torch.cat(
        [_lin(global_tokens, dec.embed), _lin(other_tokens, dec.embed), _lin(visible, dec.embed) + pos[spec.ids_keep]],
        dim=1,
    )
    d = x.shape[-1]
    for blk in dec.blocks:
        h, c = blk.num_heads, d // blk.num_heads
        q = _lin(_ln(x, blk.norm_q), blk.q).unflatten(-1, (h, c))
        kv = _lin(_ln(kv_in, blk.norm_kv), blk.kv)
        k, v = kv[..., :d].unflatten(-1, (h, c)), kv[..., d:].unflatten(-1, (h, c))
        attn = torch.softmax(torch.einsum("bqhc,bmhc->bhqm", q, k) / math.sqrt(c), dim=-1)
        x = x + _lin(torch.einsum("bhqm,bmhc->bqhc", attn, v).flatten(2), blk.proj)
        m = _lin(_ln(x, blk.norm2), blk.mlp.fc1)
        m = 0.5 * m * (1 + torch.erf(m / math.sqrt(2)))
        x = x + _lin(m, blk.mlp.fc2)
    return _lin(_ln(x, dec.norm), dec.pred)


def _subset(spec, q):
    """``spec`` decoding only the first ``q`` of its decoded positions (every sample)."""
    return with_decode(spec, torch.zeros_like(spec.mask).scatter(1, spec.ids_decode[:, :q], True))


def test_decoder_equals_plain_torch_reference():
    torch.manual_seed(0)
    dec = CrossAttentionDecoder(in_dim=24, out_dim=10, dim=16, depth=2, num_heads=4).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a swapped or missing one shows
        for p in dec.parameters():
            p.add_(0.1 * torch.randn_like(p))
    b, n = 2, 12
    spec = spec_from_noise(torch.rand(b, n), 5)
    spec = with_decode(spec, spec.mask)  # every hidden position, as the model asks at decode_ratio 1
    visible, pos = torch.randn(b, 5, 24), torch.randn(n, 16)
    global_tokens, other_tokens = torch.randn(b, 1, 24), torch.randn(b, 3, 24)
    with torch.no_grad():
        out = dec(visible, spec, pos, global_tokens, other_tokens)
        ref = _reference(dec, visible, spec, pos, global_tokens, other_tokens)
    assert out.shape == (b, 7, 10)
    assert (out - ref).abs().max() < 1e-5
    # each query reads only the visible tokens: decoding a subset gives the same rows
    sub = _subset(spec, 3)
    with torch.no_grad():
        part = dec(visible, sub, pos, global_tokens, other_tokens)
    rows = [[int((spec.ids_decode[i] == j).nonzero()) for j in sub.ids_decode[i]] for i in range(b)]
    assert torch.allclose(part, torch.stack([out[i, r] for i, r in enumerate(rows)]), atol=1e-6)
    # context "none" drops the [CLS] and other modalities from the keys
    dec.context = "none"
    with torch.no_grad():
        alone = dec(visible, spec, pos, global_tokens, other_tokens)
    assert not torch.allclose(alone, out)


def test_self_attention_option_lets_queries_interact():
    torch.manual_seed(0)
    dec = CrossAttentionDecoder(in_dim=24, out_dim=10, dim=16, depth=2, num_heads=4, self_attn=True).eval()
    spec = spec_from_noise(torch.rand(2, 12), 5)
    spec = with_decode(spec, spec.mask)
    sub = _subset(spec, 4)
    visible, pos = torch.randn(2, 5, 24), torch.randn(12, 16)
    with torch.no_grad():
        full, part = dec(visible, spec, pos), dec(visible, sub, pos)
    assert part.shape[1] < full.shape[1]
    rows = [[int((spec.ids_decode[i] == j).nonzero()) for j in sub.ids_decode[i]] for i in range(2)]
    assert not torch.allclose(part, torch.stack([full[i, r] for i, r in enumerate(rows)]), atol=1e-4)


def test_model_decodes_every_hidden_position_at_ratio_one():
    model = _model({"name": "cross"})
    out = model({"image": torch.randn(3, 3, 32, 32)}, noise=_noise())
    spec = out.specs["image"]
    assert torch.equal(spec.ids_decode, torch.argsort((~spec.mask).to(torch.int8), dim=1, stable=True)[:, :12])
    assert out.pred["image"].shape == (3, 12, 192) and bool(out.loss_mask["image"].all())


# ---- partial decoding ------------------------------------------------------------------------------
def _set_patch(x, p, value):
    r, c = divmod(p, 4)
    x = x.clone()
    x[:, :, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] = value
    return x


@pytest.mark.parametrize("name", ["cross", "transformer"])
def test_partial_decoding_counts_only_the_chosen_hidden_positions(name):
    model = _model({"name": name, "decode_ratio": 0.5}).eval()
    x = torch.randn(3, 3, 32, 32)
    out = model({"image": x}, noise=_noise(), generator=_gen())
    spec = out.specs["image"]
    assert out.pred["image"].shape == (3, 6, 192)  # round(0.5 * 12)
    assert spec.ids_decode.shape == (3, 6) and bool(torch.gather(spec.mask, 1, spec.ids_decode).all())
    assert bool(out.loss_mask["image"].all()) and out.loss_mask["image"].shape == (3, 6)
    chosen = set(spec.ids_decode[0].tolist())
    hidden = set(spec.mask[0].nonzero().flatten().tolist())
    skipped, taken = min(hidden - chosen), min(chosen)
    new = torch.randn(1, 3, 8, 8)
    x_skipped = x.clone()
    x_skipped[:1] = _set_patch(x[:1], skipped, new)
    x_taken = x.clone()
    x_taken[:1] = _set_patch(x[:1], taken, new)
    with torch.no_grad():
        same = model({"image": x_skipped}, noise=_noise(), generator=_gen()).loss
        moved = model({"image": x_taken}, noise=_noise(), generator=_gen()).loss
    assert torch.equal(same, out.loss)
    assert not torch.allclose(moved, out.loss)
    # visualize still draws (undecoded positions show 0)
    assert model.visualize("image", x, out) is not None


def test_partial_decoding_count_and_smallest_fraction():
    model = _model({"name": "cross", "decode_ratio": 0.01})
    out = model({"image": torch.randn(2, 3, 32, 32)}, noise=_noise(2), generator=_gen())
    assert out.pred["image"].shape == (2, 1, 192)  # max(1, round(0.12))
    model = _model({"name": "cross", "decode_ratio": 0.25})
    out = model({"image": torch.randn(2, 3, 32, 32)}, noise=_noise(2), generator=_gen())
    assert out.pred["image"].shape == (2, 3, 192)


def test_choice_is_reproducible_from_generator_and_from_seeds():
    model = _model({"name": "cross", "decode_ratio": 0.5})
    x = torch.randn(3, 3, 32, 32)

    def ids(**kw):
        b = len(kw["mask_seeds"]["image"]) if "mask_seeds" in kw else 3
        return model({"image": x[:b]}, **kw).specs["image"]

    a = ids(noise=_noise(), generator=_gen(5)).ids_decode
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(a, ids(noise=_noise(), generator=_gen(5)).ids_decode)
    assert not torch.equal(a, ids(noise=_noise(), generator=_gen(6)).ids_decode)
    seeds = torch.tensor([11, 12, 13])
    s = ids(mask_seeds={"image": seeds})
    torch.manual_seed(321)
    assert torch.equal(s.ids_decode, ids(mask_seeds={"image": seeds}).ids_decode)
    # sample b's choice is a function of its seed alone (world-size independent)
    one = ids(mask_seeds={"image": seeds[1:2]})
    assert torch.equal(one.mask[0], s.mask[1]) and torch.equal(one.ids_decode[0], s.ids_decode[1])
    other = ids(mask_seeds={"image": torch.tensor([11, 99, 13])})
    assert torch.equal(other.ids_decode[0], s.ids_decode[0])
    differs = ids(mask_seeds={"image": torch.tensor([14, 15, 16])})
    assert not torch.equal(differs.ids_decode, s.ids_decode)
    # the decode draw is its own stream, not the mask's noise again
    assert not torch.equal(decode_noise((1, 16), "cpu", seeds=[11]), torch.rand(16, generator=_gen(11))[None])


def test_selection_prefers_real_hidden_tokens_over_padding():
    mask = torch.tensor([[False, True, True, True, True, True], [True, True, False, True, True, True]])
    valid = torch.tensor([[True, True, True, True, False, False], [True, False, True, True, True, False]])
    spec = spec_from_mask(mask)
    dec = SimpleNamespace(decode_ratio=0.6, predict="hidden")
    for seed in range(20):
        out = decode_selection(spec, dec, valid, "modalities.text.decoder", _gen(seed))
        assert out.ids_decode.shape == (2, 3)  # round(0.6 * 5)
        assert bool(torch.gather(valid & mask, 1, out.ids_decode).all())
    assert decode_selection(spec, SimpleNamespace(decode_ratio=1.0, predict="all"), valid, "d") is spec


# ---- layer mix ---------------------------------------------------------------------------------------
def test_layer_mix_shapes_gradients_and_last_layer_equals_plain():
    torch.manual_seed(0)
    mixed = _model({"name": "cross", "layer_mix": 3}, depth=3)
    torch.manual_seed(0)
    plain = _model({"name": "cross"}, depth=3)
    missing, unexpected = plain.load_state_dict(mixed.state_dict(), strict=False)
    assert unexpected == ["decoders.image.layer_weights"] and not missing
    assert mixed.decoders["image"].wants_layers and mixed.decoders["image"].layer_weights.shape == (2, 3)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        mixed.decoders["image"].layer_weights.copy_(torch.tensor([[0.0, 0.0, 1.0]] * 2))
    out = mixed({"image": x}, noise=_noise())
    assert out.pred["image"].shape == (3, 12, 192)
    assert torch.allclose(out.pred["image"], plain({"image": x}, noise=_noise()).pred["image"], atol=1e-6)
    out.loss.backward()
    grad = mixed.decoders["image"].layer_weights.grad
    assert grad is not None and bool((grad != 0).all())
    with torch.no_grad():  # another mix reads other layers: a different prediction
        mixed.decoders["image"].layer_weights.copy_(torch.tensor([[1.0, 0.0, 0.0]] * 2))
    assert not torch.allclose(mixed({"image": x}, noise=_noise()).pred["image"], out.pred["image"], atol=1e-3)
    with pytest.raises(ValueError, match="layer_mix 4 exceeds the encoder's 3 blocks"):
        _model({"name": "cross", "layer_mix": 4}, depth=3)({"image": x})


# ---- configuration errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cross", "transformer"])
@pytest.mark.parametrize("ratio", [0, 1.5, -0.2, True, "half"])
def test_bad_decode_ratio_names_the_key(name, ratio):
    with pytest.raises(ConfigError, match=r"modalities\.image\.decoder .*decode_ratio .*\(0, 1\]"):
        _model({"name": name, "decode_ratio": ratio})


def test_bad_values_set_after_construction_and_bad_options():
    model = _model({"name": "cross"})
    model.decoders["image"].decode_ratio = 2.0
    with pytest.raises(ConfigError, match=r"modalities\.image\.decoder\.decode_ratio"):
        model({"image": torch.randn(2, 3, 32, 32)})
    with pytest.raises(ConfigError, match="layer_mix is a count"):
        _model({"name": "cross", "layer_mix": True})
    with pytest.raises(ConfigError, match="context must be one of"):
        _model({"name": "cross", "context": "other"})
    assert "cross" in DECODERS.names()


# ---- tiny models train and round-trip ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "key,tokenizer",
    [("image", _IMAGE), ("audio", {"target_length": 64, "num_mel_bins": 32, "patch_size": 8})],
)
def test_tiny_models_train_and_round_trip(key, tokenizer, tmp_path):
    torch.manual_seed(0)
    model = _model({"name": "cross", "decode_ratio": 0.5, "layer_mix": 2}, key=key, tokenizer=tokenizer)
    x = MODALITIES.get(key).example_input(model.config.modalities[key]["tokenizer"], 4)
    n = model.omnimask.tokenizers[key].patchify(x).shape[1]
    noise = {key: torch.rand(4, n, generator=_gen(3))}
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(6):
        out = model({key: x}, noise=noise, generator=_gen(4))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0], losses
    model.save_pretrained(tmp_path)
    loaded = OmniMaskForPreTraining.from_pretrained(tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    model.eval(), loaded.eval()
    with torch.no_grad():
        a = model({key: x}, noise=noise, generator=_gen(5))
        b = loaded({key: x}, noise=noise, generator=_gen(5))
    assert torch.equal(a.pred[key], b.pred[key]) and torch.equal(a.loss, b.loss)


# ---- the decoder's last block updates only the rows the head reads ------------------------------------
@pytest.mark.parametrize("mask_kind", [None, "keys", "full"])
def test_block_with_queries_equals_the_full_blocks_last_rows(mask_kind):
    from omnimask.backbone.blocks import Block

    torch.manual_seed(0)
    block = Block(16, 2, drop_path=0.1).eval()
    x = torch.randn(3, 9, 16, requires_grad=True)
    mask = None
    if mask_kind == "keys":  # key padding, (B, 1, 1, N)
        mask = torch.ones(3, 1, 1, 9, dtype=torch.bool)
        mask[1, ..., :2] = False
    elif mask_kind == "full":  # a (B, 1, N, N) mask whose query rows must be cut with the tokens
        mask = torch.rand(3, 1, 9, 9, generator=_gen(3)) > 0.3
        mask[..., 0] = True
    full = block(x, mask)[:, -4:]
    part = block(x, mask, queries=4)
    assert part.shape == (3, 4, 16)
    torch.testing.assert_close(part, full, rtol=1e-5, atol=1e-6)
    g_full = torch.autograd.grad(full.square().sum(), [x, *block.parameters()])
    g_part = torch.autograd.grad(part.square().sum(), [x, *block.parameters()])
    for a, b in zip(g_full, g_part):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(block(x, mask, queries=9), block(x, mask))  # every row: the plain block


def test_transformer_decoder_output_equals_running_every_block_in_full():
    """The decoder hands ``queries`` to its last block only; running that block over every row and
    reading the query rows gives the same predictions, with and without decoder-side masking."""
    for ratio in (1.0, 0.5):
        model = _model({"name": "transformer", "decode_ratio": ratio}).eval()
        dec = model.decoders["image"]
        seen = []

        def full_block(module, args, kwargs, seen=seen):
            seen.append(kwargs.get("queries"))
            kwargs["queries"] = None
            return args, kwargs

        x = torch.randn(3, 3, 32, 32)
        with torch.no_grad():
            fast = model({"image": x}, noise=_noise(), generator=_gen()).pred["image"]
            handle = dec.blocks[-1].register_forward_pre_hook(full_block, with_kwargs=True)
            try:
                ref_rows = model({"image": x}, noise=_noise(), generator=_gen()).pred["image"]
            finally:
                handle.remove()
        assert seen == [fast.shape[1]]  # the last block was asked for exactly the predicted rows
        torch.testing.assert_close(fast, ref_rows, rtol=1e-5, atol=1e-6)
