"""Time one VideoMAE pretraining step of omnimask against ``transformers``' ``VideoMAEForPreTraining``.

A step is forward + backward + ``AdamW.step()`` on one fixed batch of clips. omnimask (tube
masking, VideoMAE's decoder arrangement) and transformers get the same configuration, the same
clips and the same ``bool_masked_pos``, run in one process and are timed alternately step by step
(see ``bench_mae_step.py``), so machine load affects both alike. A third row times omnimask with
VideoMAE V2's dual masking (running-cell decoder mask 0.5), which transformers does not have.
The result is clips/s per model and ``ratio = omnimask / HF`` (> 1: omnimask is faster). Only
ratios from one run are meaningful.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_videomae_step.py --configs tiny --steps 3 --warmup 1
    PYTHONPATH=src python benchmarks/bench_videomae_step.py --configs vit-s,vit-b --batch-size 2

Writes ``--out`` (JSON) and the same path with ``.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import VideoMAEConfig, VideoMAEForPreTraining

sys.path.insert(0, str(Path(__file__).parent))
from bench_mae_step import (  # noqa: E402  (shared timing helpers)
    available_cores,
    count_params,
    cpu_model,
    interleaved_rounds,
    make_contender,
    seeded,
    summarize,
)
from omnimask import OmniMaskConfig, OmniMaskForPreTraining  # noqa: E402
from omnimask.masking.tube import TubeMasking  # noqa: E402


@dataclass
class BenchConfig:
    dim: int
    depth: int
    heads: int
    dec_dim: int
    dec_heads: int
    dec_depth: int = 4
    frames: int = 16
    image_size: int = 224
    patch: int = 16
    tubelet: int = 2
    mask_ratio: float = 0.9

    @property
    def grid(self) -> tuple[int, int, int]:
        s = self.image_size // self.patch
        return (self.frames // self.tubelet, s, s)


CONFIGS = {
    "tiny": BenchConfig(
        dim=64, depth=2, heads=2, dec_dim=32, dec_heads=2, dec_depth=1, frames=4, image_size=32, patch=8
    ),
    "vit-s": BenchConfig(dim=384, depth=12, heads=6, dec_dim=192, dec_heads=3),
    "vit-b": BenchConfig(dim=768, depth=12, heads=12, dec_dim=384, dec_heads=6),
}


def build_omnimask(cfg: BenchConfig, dual: bool = False) -> OmniMaskForPreTraining:
    masking = {"name": "tube", "ratio": cfg.mask_ratio}
    if dual:
        masking = {"name": "dual", "encoder": masking, "decoder": {"name": "running_cell", "ratio": 0.5}}
    video = {
        "tokenizer": {
            "num_frames": cfg.frames,
            "image_size": cfg.image_size,
            "patch_size": cfg.patch,
            "tubelet_size": cfg.tubelet,
        },
        "masking": masking,
        "decoder": {
            "name": "transformer",
            "dim": cfg.dec_dim,
            "depth": cfg.dec_depth,
            "num_heads": cfg.dec_heads,
            "embed_bias": False,
            "norm_eps": 1e-12,
            "final_norm_eps": 1e-5,
        },
        "objective": {"name": "mse", "norm": "patch_channel", "unnormalize_input": True},
    }
    encoder = {"dim": cfg.dim, "depth": cfg.depth, "num_heads": cfg.heads, "norm_eps": 1e-12, "cls_token": False}
    return OmniMaskForPreTraining(OmniMaskConfig(encoder=encoder, modalities={"video": video}))


def build_hf(cfg: BenchConfig) -> VideoMAEForPreTraining:
    hf = VideoMAEConfig(
        image_size=cfg.image_size,
        patch_size=cfg.patch,
        num_frames=cfg.frames,
        tubelet_size=cfg.tubelet,
        hidden_size=cfg.dim,
        num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.heads,
        intermediate_size=4 * cfg.dim,
        decoder_hidden_size=cfg.dec_dim,
        decoder_num_hidden_layers=cfg.dec_depth,
        decoder_num_attention_heads=cfg.dec_heads,
        decoder_intermediate_size=4 * cfg.dec_dim,
        use_mean_pooling=False,
        norm_pix_loss=True,
    )
    return VideoMAEForPreTraining(hf)


def bench_config(name: str, cfg: BenchConfig, args: argparse.Namespace) -> dict[str, Any]:
    b = args.batch_size
    with seeded(0):
        om = build_omnimask(cfg).train()
    with seeded(0):
        dual = build_omnimask(cfg, dual=True).train()
    with seeded(0):
        hf = build_hf(cfg).train()
    counts = {"omnimask_trainable": count_params(om, True), "hf_trainable": count_params(hf, True)}
    # omnimask fuses q/k/v with a k bias VideoMAE lacks: dim extra parameters per attention layer.
    extra_k_bias = cfg.depth * cfg.dim + cfg.dec_depth * cfg.dec_dim
    assert counts["omnimask_trainable"] == counts["hf_trainable"] + extra_k_bias, counts
    print(
        f"[{name}] trainable parameters: omnimask {counts['omnimask_trainable']:,}, HF {counts['hf_trainable']:,} "
        f"(+{extra_k_bias:,} k-bias entries in omnimask's fused qkv)"
    )

    gen = torch.Generator().manual_seed(1234)
    clips = torch.randn(b, 3, cfg.frames, cfg.image_size, cfg.image_size, generator=gen)
    hf_clips = clips.transpose(1, 2).contiguous()  # transformers takes (B, T, C, H, W)
    mask = TubeMasking(cfg.mask_ratio)(b, cfg.grid, generator=gen).mask
    contenders = [
        make_contender("omnimask", om, lambda: om({"video": clips}, masks={"video": mask}).loss),
        make_contender("hf", hf, lambda: hf(pixel_values=hf_clips, bool_masked_pos=mask).loss),
        make_contender(
            "omnimask_dual",
            dual,
            lambda: dual({"video": clips}, masks={"video": mask}, generator=torch.Generator().manual_seed(7)).loss,
        ),
    ]
    t0 = time.perf_counter()
    interleaved_rounds(contenders, args.warmup, args.bf16, record=False)
    warm_s = time.perf_counter() - t0
    interleaved_rounds(contenders, args.steps, args.bf16, record=True)
    res: dict[str, Any] = {
        "config": name,
        "shape": asdict(cfg),
        "batch_size": b,
        "params": counts,
        "warmup_s": warm_s,
        "hf_attn_implementation": hf.config._attn_implementation,
    }
    for c in contenders:
        s = summarize(c, b)
        s["clips_per_s"] = s.pop("images_per_s")
        res[c.name] = s
    res["ratio"] = res["omnimask"]["clips_per_s"] / res["hf"]["clips_per_s"]
    res["ratio_dual"] = res["omnimask_dual"]["clips_per_s"] / res["hf"]["clips_per_s"]
    print(
        f"[{name}] batch {b}: omnimask {res['omnimask']['clips_per_s']:.3f} clips/s, HF {res['hf']['clips_per_s']:.3f} clips/s, "
        f"ratio {res['ratio']:.3f}; omnimask dual masking {res['omnimask_dual']['clips_per_s']:.3f} clips/s "
        f"({res['ratio_dual']:.2f}x HF)",
        flush=True,
    )
    del contenders
    gc.collect()
    return res


def write_markdown(path: Path, meta: dict[str, Any], results: list[dict[str, Any]]) -> None:
    lines = [
        f"VideoMAE step (forward + backward + AdamW), {meta['dtype']}, {meta['threads']} thread(s) on {meta['cpu']}, "
        f"torch {meta['torch']}, transformers {meta['transformers']}; tube mask 0.9, norm-pix target.",
        "",
        "| config | clip | batch | omnimask clips/s | HF clips/s | ratio | omnimask V2 dual clips/s | dual / HF |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["shape"]
        lines.append(
            f"| {r['config']} | {s['frames']}x{s['image_size']}² | {r['batch_size']} | {r['omnimask']['clips_per_s']:.3f} | "
            f"{r['hf']['clips_per_s']:.3f} | {r['ratio']:.3f} | {r['omnimask_dual']['clips_per_s']:.3f} | {r['ratio_dual']:.2f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="vit-s,vit-b", help=f"comma-separated, from {list(CONFIGS)}")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/videomae_step.json"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads or available_cores())
    import transformers

    meta = {
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": "bf16 autocast" if args.bf16 else "fp32",
    }
    results = [bench_config(n, CONFIGS[n], args) for n in args.configs.split(",")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    write_markdown(args.out.with_suffix(".md"), meta, results)
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
