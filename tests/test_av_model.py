"""Modality-specific then shared encoder blocks, CAV-MAE's per-modality norms, the joint decoder and
the InfoNCE objective (issue 13): exact behaviour on small models and constructed inputs."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from omnimask import OmniMaskConfig, OmniMaskForPreTraining, OmniMaskModel
from omnimask.objectives import OBJECTIVES
from omnimask.registry import ConfigError
from omnimask.training import OptimConfig
from omnimask.training.schedule import schedule_lr

AUDIO = {"tokenizer": {"target_length": 32, "num_mel_bins": 16, "patch_size": 8}}
IMAGE = {"tokenizer": {"image_size": 16, "patch_size": 8}}


def av_config(**encoder) -> OmniMaskConfig:
    enc = {"dim": 32, "depth": 3, "num_heads": 4, "cls_token": False, "modality_embed": True, **encoder}
    return OmniMaskConfig(
        encoder=enc,
        modalities={"audio": dict(AUDIO), "image": dict(IMAGE)},
        joint_decoder={"modalities": ["audio", "image"], "dim": 16, "depth": 1, "num_heads": 2},
        contrastive={"name": "infonce", "modalities": ["audio", "image"], "weight": 0.01, "temperature": 0.05},
    )


def batch(b: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"audio": torch.randn(b, 1, 32, 16, generator=g), "image": torch.randn(b, 3, 16, 16, generator=g)}


def _randomize(model: torch.nn.Module) -> None:
    """Every weight random, LayerNorms included (so a norm used in the wrong place shows)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if p.ndim == 1 else 0.0))


def test_shared_encoder_with_no_specific_blocks_is_todays_encoder():
    """N = 0: the same weights (same seed) and, bit for bit, blocks over [CLS] + tokens, then the norm."""
    base = dict(encoder={"dim": 32, "depth": 2, "num_heads": 4}, modalities={"audio": AUDIO, "image": IMAGE})
    torch.manual_seed(0)
    plain = OmniMaskModel(OmniMaskConfig(**base))
    torch.manual_seed(0)
    zero = OmniMaskModel(OmniMaskConfig(**{**base, "encoder": {**base["encoder"], "modality_specific_depth": 0}}))
    assert plain.state_dict().keys() == zero.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), zero.state_dict().values()))
    x = batch()
    out = zero(x).last_hidden_state
    tokens = {k: zero.tokenizers[k].tokenize(v).tokens + zero.modality_embed[k] for k, v in x.items()}
    h = torch.cat([zero.cls_token.expand(3, -1, -1), tokens["audio"], tokens["image"]], dim=1)
    for blk in zero.encoder.blocks:
        h = blk(h)
    assert torch.equal(out, zero.encoder.norm(h)) and torch.equal(out, plain(x).last_hidden_state)


def test_a_token_never_passes_through_the_other_modalitys_specific_blocks():
    model = OmniMaskModel(av_config(modality_specific_depth=2, modality_norms=True))
    assert sorted(model.encoder.specific_blocks) == ["audio", "image"] and len(model.encoder.blocks) == 1
    seen: dict[str, list[int]] = {"audio": [], "image": []}
    for key, blocks in model.encoder.specific_blocks.items():
        for blk in blocks:
            blk.register_forward_hook(lambda m, args, out, key=key: seen[key].append(args[0].shape[1]))
    x = batch()
    model(x)
    assert seen == {"audio": [8, 8], "image": [4, 4]}  # 4x2 audio patches, 2x2 image patches, each alone
    # Changing the image changes nothing that enters the shared blocks from the audio side.
    enter = lambda inp: model.enter({k: model.tokenizers[k].tokenize(v).tokens for k, v in inp.items()}, {}, {})  # noqa: E731
    other = {**x, "image": torch.randn_like(x["image"])}
    assert torch.equal(enter(x)["audio"], enter(other)["audio"]) and not torch.equal(
        enter(x)["image"], enter(other)["image"]
    )


def test_specific_then_shared_blocks_and_the_three_norm_sets_by_hand():
    model = OmniMaskModel(av_config(modality_specific_depth=2, modality_norms=True))
    _randomize(model)
    x = batch()
    entered = {}
    for k, v in x.items():
        h = model.tokenizers[k].tokenize(v).tokens + model.modality_embed[k]
        for blk in model.encoder.specific_blocks[k]:
            h = blk(h)
        entered[k] = h
    shared = model.encoder.blocks[0]

    def run(h: torch.Tensor, key: str | None) -> torch.Tensor:
        n1, n2 = (shared.norm1, shared.norm2) if key is None else (
            shared.modality_norms[key]["norm1"], shared.modality_norms[key]["norm2"])  # fmt: skip
        h = h + shared.attn(n1(h))
        h = h + shared.mlp(n2(h))
        return (model.encoder.norm if key is None else model.encoder.modality_final_norms[key])(h)

    joint = run(torch.cat([entered["audio"], entered["image"]], 1), None)
    torch.testing.assert_close(model(x).last_hidden_state, joint, rtol=0, atol=1e-6)
    for k in x:  # one modality alone: its own norms (CAV-MAE's audio-only / visual-only passes)
        torch.testing.assert_close(model({k: x[k]}).last_hidden_state, run(entered[k], k), rtol=0, atol=1e-6)
    assert not torch.allclose(run(entered["audio"], "audio"), run(entered["audio"], None), atol=1e-3)


def test_specific_blocks_for_named_modalities_only():
    model = OmniMaskModel(av_config(modality_specific_depth=1, modality_specific=["audio"]))
    assert list(model.encoder.specific_blocks) == ["audio"] and len(model.encoder.blocks) == 2
    with pytest.raises(ValueError, match=r"encoder.modality_specific names \['video'\]"):
        OmniMaskModel(av_config(modality_specific_depth=1, modality_specific=["video"]))
    with pytest.raises(ValueError, match=r"modality_specific_depth must be in \[0, depth=3\], got 4"):
        av_config(modality_specific_depth=4)


def test_joint_decoder_decodes_both_modalities_together():
    model = OmniMaskForPreTraining(av_config(modality_specific_depth=2, modality_norms=True))
    _randomize(model)
    x = batch()
    masks = {"audio": torch.zeros(3, 8, dtype=torch.bool), "image": torch.zeros(3, 4, dtype=torch.bool)}
    masks["audio"][:, [1, 4, 6, 7]] = True
    masks["image"][:, [0, 3]] = True
    out = model(x, masks=masks)
    assert out.pred["audio"].shape == (3, 8, 64) and out.pred["image"].shape == (3, 4, 192)
    # By hand: visible tokens projected, mask tokens at the hidden positions, grid order, positions
    # and decoder-modality embeddings, both sequences together through the blocks.
    enc = model.omnimask(x, masks=masks)
    jd, seqs = model.joint_decoder, []
    for k in ("audio", "image"):
        v = jd.embed(enc.hidden[k])
        full = jd.mask_token.expand(3, masks[k].shape[1], -1).clone()
        full[~masks[k]] = v.reshape(-1, v.shape[-1])
        seqs.append(full + getattr(model.decoder_pos, k) + model.decoders[k].modality_embed)
    h = torch.cat(seqs, 1)
    for blk in jd.blocks:
        h = blk(h)
    h = jd.norm(h)
    torch.testing.assert_close(out.pred["audio"], model.decoders["audio"].pred(h[:, :8]), rtol=0, atol=1e-5)
    torch.testing.assert_close(out.pred["image"], model.decoders["image"].pred(h[:, 8:]), rtol=0, atol=1e-5)
    assert set(out.losses) == {"audio", "image", "contrastive"}
    expected = out.losses["audio"] + out.losses["image"] + 0.01 * out.losses["contrastive"]
    torch.testing.assert_close(out.loss, expected)


def test_infonce_equals_a_hand_computation():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    nce = OBJECTIVES.build("infonce", {"temperature": 0.5}, "test")
    cos = [[1.0, 0.0, 0.6], [1 / math.sqrt(2), 1 / math.sqrt(2), 7 / (5 * math.sqrt(2))], [0.0, -1.0, -0.8]]
    # one direction: each b (row) picks its a among all a's
    rows = [-(2 * cos[j][j]) + math.log(sum(math.exp(2 * c) for c in cos[j])) for j in range(3)]
    assert float(nce(a, b)) == pytest.approx(sum(rows) / 3, rel=1e-6)
    # CAV-MAE's form: -mean(diag(log_softmax(a @ b.T / tau, dim=0))) on normalised features
    total = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / 0.5
    assert float(nce(a, b)) == pytest.approx(float(-torch.diag(F.log_softmax(total, dim=0)).mean()), rel=1e-6)
    cols = [-(2 * cos[i][i]) + math.log(sum(math.exp(2 * cos[j][i]) for j in range(3))) for i in range(3)]
    sym = OBJECTIVES.build("infonce", {"temperature": 0.5, "symmetric": True}, "test")
    assert float(sym(a, b)) == pytest.approx((sum(rows) + sum(cols)) / 6, rel=1e-6)
    learned = OBJECTIVES.build("infonce", {"temperature": 0.5, "learn_temperature": True}, "test")
    assert [n for n, _ in learned.named_parameters()] == ["log_scale"] and float(
        learned(a, b).detach()
    ) == pytest.approx(sum(rows) / 3, rel=1e-6)
    assert float(nce.accuracy(a, b)) == pytest.approx(1 / 3)  # b0 -> a0 right; b1 -> a2, b2 -> a0 wrong


GATHER_CHILD = """
import json, sys, torch
import torch.distributed as dist
from omnimask.objectives import OBJECTIVES
dist.init_process_group("gloo")
rank = dist.get_rank()
g = torch.Generator().manual_seed(0)
a, b = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
out = {}
for sym in (False, True):
    nce = OBJECTIVES.build("infonce", {"temperature": 0.1, "symmetric": sym}, "t").train()
    la, lb = a[rank * 4 : rank * 4 + 4].clone().requires_grad_(), b[rank * 4 : rank * 4 + 4].clone().requires_grad_()
    loss = nce(la, lb)
    loss.backward()
    total = loss.detach().clone()
    dist.all_reduce(total)
    out[str(sym)] = {"loss": float(total) / 2, "grad_a": la.grad.tolist(), "grad_b": lb.grad.tolist()}
json.dump(out, open(sys.argv[1] + f"/rank{rank}.json", "w"))
dist.destroy_process_group()
"""


def test_gathered_negatives_on_two_processes_equal_one_process(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(GATHER_CHILD)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    for _ in range(3):
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                               "--master_addr=127.0.0.1", f"--master_port={port}", str(script), str(tmp_path)],
                              env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        if "EADDRINUSE" not in proc.stderr:
            break
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    for sym in (False, True):
        nce = OBJECTIVES.build("infonce", {"temperature": 0.1, "symmetric": sym}, "t").train()
        fa, fb = a.clone().requires_grad_(), b.clone().requires_grad_()
        loss = nce(fa, fb)
        loss.backward()
        for r in (0, 1):
            got = ranks[r][str(sym)]
            assert got["loss"] == pytest.approx(float(loss.detach()), rel=1e-6)
            # DDP averages the ranks' gradients: each rank holds 2 x its share of the global mean's.
            torch.testing.assert_close(
                torch.tensor(got["grad_a"]) / 2, fa.grad[r * 4 : r * 4 + 4], rtol=1e-5, atol=1e-7
            )
            torch.testing.assert_close(
                torch.tensor(got["grad_b"]) / 2, fb.grad[r * 4 : r * 4 + 4], rtol=1e-5, atol=1e-7
            )


def test_contrastive_and_joint_decoder_config_errors():
    mods = {"audio": AUDIO, "image": IMAGE}
    with pytest.raises(ConfigError, match=r"contrastive.modalities must name two different modalities"):
        OmniMaskConfig(modalities=mods, contrastive={"modalities": ["audio", "video"]})
    with pytest.raises(ConfigError, match="'mse' is a reconstruction objective"):
        OmniMaskConfig(modalities=mods, contrastive={"name": "mse", "modalities": ["audio", "image"]})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['tau'\] in contrastive"):
        OmniMaskConfig(modalities=mods, contrastive={"modalities": ["audio", "image"], "tau": 0.1})
    with pytest.raises(ConfigError, match="configure it under `contrastive`"):
        OmniMaskForPreTraining(OmniMaskConfig(modalities={"image": {**IMAGE, "objective": {"name": "infonce"}}}))
    with pytest.raises(ConfigError, match="modalities.image.decoder: image is decoded by joint_decoder"):
        OmniMaskConfig(
            modalities={"audio": AUDIO, "image": {**IMAGE, "decoder": {"name": "transformer"}}},
            joint_decoder={"modalities": ["audio", "image"]},
        )


def test_config_round_trip_and_encoder_only_load(tmp_path):
    model = OmniMaskForPreTraining(av_config(modality_specific_depth=2, modality_norms=True))
    model.save_pretrained(tmp_path)
    again = OmniMaskForPreTraining.from_pretrained(tmp_path)
    x = batch()
    seeds = {"audio": torch.arange(3), "image": torch.arange(3) + 10}
    model.eval()
    assert torch.equal(model(x, mask_seeds=seeds).loss, again(x, mask_seeds=seeds).loss)
    enc = OmniMaskModel.from_pretrained(tmp_path)
    torch.testing.assert_close(enc(audio=x["audio"]).pooler_output, model.omnimask(audio=x["audio"]).pooler_output)


def test_step_schedule_halves_the_lr_like_multisteplr():
    o = OptimConfig(schedule="step", warmup_epochs=0, step_start=10, step_every=5, step_gamma=0.5)
    lrs = [schedule_lr(o, e, 1.0, 25) for e in (0, 9.99, 10, 14.5, 15, 20, 24.9)]
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125, 0.125]
    with pytest.raises(ConfigError, match="optim.schedule must be cosine or step"):
        OptimConfig(schedule="linear")
    with pytest.raises(ConfigError, match="optim.name must be adamw or adam"):
        OptimConfig(name="sgd")


def test_contrastive_on_every_token_is_each_modality_encoded_alone():
    """tokens: all pools a second, unmasked pass of each modality alone: the encoder's own features."""
    cfg = av_config(modality_specific_depth=1, modality_norms=True).to_dict()
    cfg["contrastive"] = {**cfg["contrastive"], "tokens": "all"}
    model = OmniMaskForPreTraining(
        OmniMaskConfig(**{k: cfg[k] for k in ("encoder", "modalities", "joint_decoder", "contrastive")})
    )
    model.eval()
    x = batch()
    out = model(x)
    tokens = model.omnimask.embed(x)
    enc = model.forward_encoder(tokens, out.specs)  # the masked joint pass; every_token does not use its tokens
    for k in x:
        got = model.forward_alone(k, enc, tokens[k], out.specs[k], every_token=True)
        torch.testing.assert_close(got, model.omnimask({k: x[k]}).pooler_output, rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="contrastive.tokens must be visible"):
        OmniMaskConfig(
            modalities={"audio": AUDIO, "image": IMAGE},
            contrastive={"modalities": ["audio", "image"], "tokens": "some"},
        )
