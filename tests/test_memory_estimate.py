"""benchmarks/memory_estimate.py: exact parameter counts, and the memory model's rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from omnimask import OmniMaskConfig, OmniMaskForPreTraining
from script_loader import load_script

me = load_script("benchmarks/memory_estimate.py")
TINY = me.MAEShape("tiny", dim=64, depth=2, heads=4, patch_size=4, image_size=32, dec_dim=32, dec_depth=1, dec_heads=4)


def _close(value: float, expected: float, rel: float = 0.005) -> bool:
    return abs(value - expected) <= rel * expected


def test_parameter_counts_match_the_published_sizes() -> None:
    b, large, huge = (me.param_counts(me.MODELS[k]) for k in ("vit-b16", "vit-l16", "vit-h14"))
    assert b["total"] == 111_655_680  # trainable; + 251,776 fixed sin-cos entries = 111,907,840
    assert b["total"] + b["fixed_tables"] == 111_907_840
    assert _close(b["total"], 111.9e6) and _close(b["total"] + b["fixed_tables"], 111.9e6)
    assert _close(b["encoder"], 85.8e6) and _close(b["decoder"], 26.0e6)
    assert _close(large["encoder"], 303e6) and _close(huge["encoder"], 631e6)
    assert b["largest_block"] == b["encoder_block"] == 7_087_872  # 12 * 768^2 + 13 * 768


def test_token_counts_follow_mae_masking() -> None:
    b16, h14 = me.MODELS["vit-b16"], me.MODELS["vit-h14"]
    assert (b16.enc_tokens, b16.dec_tokens, b16.patch_dim) == (50, 197, 768)
    assert (h14.enc_tokens, h14.dec_tokens, h14.patch_dim) == (65, 257, 588)


def test_formula_equals_the_built_modules_on_a_tiny_config() -> None:
    counts = me.param_counts(TINY)
    model = me.MiniMAE(TINY)
    assert sum(p.numel() for p in model.parameters()) == counts["total"]
    assert sum(b.numel() for b in model.buffers()) == counts["fixed_tables"]
    assert sum(p.numel() for p in model.blocks[0].parameters()) == counts["encoder_block"]
    assert sum(p.numel() for p in model.decoder_blocks[0].parameters()) == counts["decoder_block"]
    # omnimask's own MAE has the same trainable parameters (its position tables are buffers as well)
    config = OmniMaskConfig(
        encoder=dict(dim=TINY.dim, depth=TINY.depth, num_heads=TINY.heads, mlp_ratio=TINY.mlp_ratio),
        modalities={
            "image": {
                "tokenizer": {"image_size": TINY.image_size, "patch_size": TINY.patch_size, "in_chans": 3},
                "masking": {"name": "random", "ratio": TINY.mask_ratio},
                "decoder": {"name": "transformer", "dim": TINY.dec_dim, "depth": TINY.dec_depth, "num_heads": 4},
                "objective": {"name": "mse", "norm": "patch"},
            }
        },
    )
    omni = OmniMaskForPreTraining(config)
    assert sum(p.numel() for p in omni.parameters() if p.requires_grad) == counts["total"]


def test_the_measured_model_trains_on_cpu_with_and_without_checkpointing() -> None:
    model = me.MiniMAE(TINY)
    images = torch.randn(2, 3, 32, 32)
    losses, grads = [], []
    for ckpt in (False, True):
        model.ckpt = ckpt
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        loss = model(images)
        loss.backward()
        losses.append(loss.detach())
        grads.append(model.blocks[0].qkv.weight.grad.clone())
    assert torch.isfinite(losses[0]) and torch.equal(losses[0], losses[1])
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("model", list(me.MODELS))
def test_fsdp_divides_the_state_by_the_number_of_gpus(model: str) -> None:
    shape = me.MODELS[model]
    ddp = me.estimate(shape, 64, "bf16", "ddp", False, gpus=8)
    assert ddp.state == pytest.approx(16 * ddp.params / me.GIB)
    for gpus in (2, 8, 64):
        fsdp = me.estimate(shape, 64, "bf16", "fsdp", False, gpus=gpus)
        assert fsdp.state == pytest.approx(ddp.state / gpus)
        assert fsdp.buffers == pytest.approx(me.estimate(shape, 64, "bf16", "fsdp", False, gpus=2).buffers)
        assert fsdp.activations == ddp.activations and fsdp.total < ddp.total
    assert me.estimate(shape, 64, "bf16", "ddp", False, gpus=64).state == ddp.state


@pytest.mark.parametrize("precision", me.PRECISIONS)
def test_activation_checkpointing_reduces_activations(precision: str) -> None:
    for shape in me.MODELS.values():
        full = me.activation_bytes(shape, 128, precision, ckpt=False)
        ckpt = me.activation_bytes(shape, 128, precision, ckpt=True)
        assert ckpt < full / 3
        assert me.activation_bytes(shape, 256, precision, ckpt=True) == 2 * ckpt  # linear in the batch


def test_bf16_activations_are_half_of_fp32() -> None:
    shape = me.MODELS["vit-l16"]
    for tokens, dim in ((shape.enc_tokens, shape.dim), (shape.dec_tokens, shape.dec_dim)):
        bf16 = me.block_activation_bytes(tokens, 64, dim, "bf16")
        assert bf16 == 34 * tokens * 64 * dim and me.block_activation_bytes(tokens, 64, dim, "fp32") == 2 * bf16
    assert 2 * me.blocks_activation_bytes(shape, 64, "bf16", False) == me.blocks_activation_bytes(
        shape, 64, "fp32", False
    )
    assert me.activation_bytes(shape, 64, "bf16", False) < 0.55 * me.activation_bytes(shape, 64, "fp32", False)


def test_total_adds_the_columns_or_names_the_optimizer_step() -> None:
    for e in me.table(list(me.MODELS), [64, 256], me.PRECISIONS, [False, True], gpus=8):
        parts = e.state + e.buffers + e.activations + e.overhead
        if e.peak == "backward":
            assert e.total == pytest.approx(parts)
        else:
            assert e.peak == "step" and e.total > parts
        assert e.overhead >= 0.75


def test_cli_prints_markdown_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mem.json"
    assert me.main(["--markdown", "--models", "vit-b16", "--batches", "64", "--gpus", "4", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| model | batch/GPU |") and len(lines) == 2 + 2 * 2 * 2
    report = json.loads(out.read_text())
    assert report["gpus"] == 4 and report["params"]["vit-b16"]["total"] == 111_655_680
    assert {r["strategy"] for r in report["rows"]} == {"ddp", "fsdp"} and len(report["rows"]) == 8


def test_measure_without_cuda_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert me.main(["--measure"]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
