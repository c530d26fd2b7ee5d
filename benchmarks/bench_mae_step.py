"""Time one MAE pretraining step of omnimask against ``transformers``' ``ViTMAEForPreTraining``.

A step is forward + backward + ``AdamW.step()`` on one fixed batch. Both models get the same
configuration, the same batch and the same masking noise, run in the same process, and are timed
alternately step by step so that load from other processes on the machine affects both alike.
The result is images/s for each model and ``ratio = omnimask / HF`` (> 1: omnimask is faster).
Absolute numbers depend on the machine and its load; only the ratio from one run is meaningful.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_mae_step.py --configs tiny --steps 3 --warmup 1
    PYTHONPATH=src python benchmarks/bench_mae_step.py --configs vit-s16,vit-b16 --batch-size 8
    PYTHONPATH=src python benchmarks/bench_mae_step.py --configs vit-s16 --profile

Writes ``--out`` (JSON) and the same path with ``.md`` (a short Markdown table).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import Tensor, nn
from transformers import ViTMAEConfig, ViTMAEForPreTraining

import omnimask
from omnimask import OmniMaskConfig, OmniMaskForPreTraining

MASK_RATIO = 0.75
# MAE's (and HF's) LayerNorm epsilon; set on both sides so the two models do identical arithmetic.
NORM_EPS = 1e-12


@dataclass(frozen=True)
class BenchConfig:
    """One MAE shape, written once and translated into both libraries' configs."""

    image_size: int
    patch_size: int
    in_chans: int
    dim: int
    depth: int
    num_heads: int
    mlp_dim: int
    dec_dim: int
    dec_depth: int
    dec_heads: int
    dec_mlp_dim: int

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


CONFIGS: dict[str, BenchConfig] = {
    # Smoke test only: far too small for the timings to mean anything.
    "tiny": BenchConfig(32, 4, 3, 64, 2, 4, 256, 32, 1, 4, 128),
    "vit-s16": BenchConfig(224, 16, 3, 384, 12, 6, 1536, 512, 8, 16, 2048),
    "vit-b16": BenchConfig(224, 16, 3, 768, 12, 12, 3072, 512, 8, 16, 2048),
}


# --------------------------------------------------------------------------------------------
# Model construction
# --------------------------------------------------------------------------------------------


def build_omnimask(cfg: BenchConfig) -> OmniMaskForPreTraining:
    """omnimask MAE with random masking, a transformer decoder and the norm-pix MSE objective."""
    config = OmniMaskConfig(
        encoder=dict(
            dim=cfg.dim, depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_dim / cfg.dim, norm_eps=NORM_EPS
        ),
        modalities={
            "image": {
                "tokenizer": {"image_size": cfg.image_size, "patch_size": cfg.patch_size, "in_chans": cfg.in_chans},
                "masking": {"name": "random", "ratio": MASK_RATIO},
                "decoder": {
                    "name": "transformer",
                    "dim": cfg.dec_dim,
                    "depth": cfg.dec_depth,
                    "num_heads": cfg.dec_heads,
                    "mlp_ratio": cfg.dec_mlp_dim / cfg.dec_dim,
                    "norm_eps": NORM_EPS,
                },
                "objective": {"name": "mse", "norm": "patch"},
            }
        },
    )
    return OmniMaskForPreTraining(config)


def build_hf(cfg: BenchConfig) -> ViTMAEForPreTraining:
    """transformers' ViTMAE with the same shape (default attention implementation, i.e. SDPA)."""
    config = ViTMAEConfig(
        hidden_size=cfg.dim,
        num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.mlp_dim,
        decoder_hidden_size=cfg.dec_dim,
        decoder_num_hidden_layers=cfg.dec_depth,
        decoder_num_attention_heads=cfg.dec_heads,
        decoder_intermediate_size=cfg.dec_mlp_dim,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        num_channels=cfg.in_chans,
        mask_ratio=MASK_RATIO,
        norm_pix_loss=True,
        layer_norm_eps=NORM_EPS,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return ViTMAEForPreTraining(config)


def count_params(model: nn.Module, trainable_only: bool) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


@dataclass
class Contender:
    """A model under test: a closure computing its loss on the fixed batch, and its optimiser."""

    name: str
    model: nn.Module
    loss_fn: Callable[[], Tensor]
    optimizer: torch.optim.Optimizer
    times: list[float]


def make_contender(name: str, model: nn.Module, loss_fn: Callable[[], Tensor]) -> Contender:
    # Only trainable parameters enter AdamW: HF's frozen sin-cos tables must not cost optimiser work.
    params = [p for p in model.parameters() if p.requires_grad]
    # Same hyper-parameters as MAE pretraining; the values do not affect the timing, the algorithm does.
    opt = torch.optim.AdamW(params, lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    return Contender(name, model, loss_fn, opt, [])


def autocast_ctx(bf16: bool) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def train_step(c: Contender, bf16: bool) -> float:
    """One full optimiser step; returns its wall time in seconds."""
    t0 = time.perf_counter()
    c.optimizer.zero_grad(set_to_none=True)
    with autocast_ctx(bf16):
        loss = c.loss_fn()
    loss.backward()
    c.optimizer.step()
    dt = time.perf_counter() - t0
    # A NaN loss would mean the two models are not doing the same (valid) work.
    if not torch.isfinite(loss.detach()):
        raise RuntimeError(f"{c.name}: non-finite loss {loss.item()}")
    return dt


def interleaved_rounds(contenders: list[Contender], rounds: int, bf16: bool, record: bool) -> None:
    """Run every contender once per round, reversing the order on odd rounds (A B, B A, A B, ...).

    Alternating makes each model run equally often first and second in a round, so slow drift in
    machine load (or cache/allocator effects from the preceding model) cancels instead of biasing one side.
    """
    for r in range(rounds):
        order = contenders if r % 2 == 0 else contenders[::-1]
        for c in order:
            dt = train_step(c, bf16)
            if record:
                c.times.append(dt)


def summarize(c: Contender, batch_size: int) -> dict[str, Any]:
    med = statistics.median(c.times)
    return {
        "median_step_s": med,
        "images_per_s": batch_size / med,
        "min_step_s": min(c.times),
        "max_step_s": max(c.times),
        "step_times_s": c.times,
    }


# --------------------------------------------------------------------------------------------
# Profiling
# --------------------------------------------------------------------------------------------


#: (name, modules, time backward too)
Section = tuple[str, list[nn.Module], bool]


def omnimask_sections(model: OmniMaskForPreTraining) -> list[Section]:
    """Non-overlapping module groups of omnimask, named like :func:`hf_sections` for a side-by-side view."""
    dec = model.decoders["image"]
    return [
        ("patch embed (fwd only)", [model.omnimask.tokenizers["image"]], False),
        ("encoder blocks", list(model.omnimask.encoder.blocks), True),
        ("decoder blocks", list(dec.blocks), True),
        ("norms + decoder embed/pred", [model.omnimask.encoder.norm, dec.embed, dec.norm, dec.pred], True),
        ("loss", [model.objectives["image"]], True),
    ]


def hf_sections(model: ViTMAEForPreTraining) -> list[Section]:
    """The same groups in HF's ViTMAE (its loss is inline in ``forward``, so it lands in "other")."""
    dec = model.decoder
    return [
        ("patch embed (fwd only)", [model.vit.embeddings.patch_embeddings], False),
        ("encoder blocks", list(model.vit.layers), True),
        ("decoder blocks", list(dec.decoder_layers), True),
        (
            "norms + decoder embed/pred",
            [model.vit.layernorm, dec.decoder_embed, dec.decoder_norm, dec.decoder_pred],
            True,
        ),
    ]


class SectionTimer:
    """Wall time of named submodules, forward and backward, measured with module hooks.

    Forward: pre-hook to post-hook. Backward: full backward pre-hook (gradient of the output is
    ready) to full backward hook (gradients of the inputs are done). On CPU the autograd engine
    runs one node at a time, so these spans do not overlap and are attributable to the module.
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._start: dict[str, float] = {}
        self._handles: list[Any] = []

    def _add(self, key: str, dt: float) -> None:
        self.totals[key] = self.totals.get(key, 0.0) + dt

    def watch(self, name: str, modules: list[nn.Module], backward: bool = True) -> None:
        """Accumulate the time of ``modules`` (run one after another, never nested) under ``name``.

        ``backward=False`` for modules whose inputs need no gradient (the patch embedding): their
        backward "end" hook would fire as soon as the output gradient arrives, before the weight
        gradients are computed, so the span would be meaningless. Their backward lands in "other".
        """

        def fwd_pre(*_: Any) -> None:
            self._start[f"{name}/fwd"] = time.perf_counter()

        def fwd_post(*_: Any) -> None:
            self._add(f"{name}/fwd", time.perf_counter() - self._start[f"{name}/fwd"])

        def bwd_pre(*_: Any) -> None:
            self._start[f"{name}/bwd"] = time.perf_counter()

        def bwd_post(*_: Any) -> None:
            self._add(f"{name}/bwd", time.perf_counter() - self._start[f"{name}/bwd"])

        for module in modules:
            self._handles += [module.register_forward_pre_hook(fwd_pre), module.register_forward_hook(fwd_post)]
            if backward:
                self._handles += [
                    module.register_full_backward_pre_hook(bwd_pre),
                    module.register_full_backward_hook(bwd_post),
                ]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def profile_breakdown(c: Contender, sections: list[Section], steps: int, bf16: bool) -> dict[str, float]:
    """Average per-step ms of each section, plus the optimiser step and the unattributed rest."""
    timer = SectionTimer()
    for name, mods, backward in sections:
        timer.watch(name, mods, backward)
    total = opt_time = 0.0
    try:
        for _ in range(steps):
            t0 = time.perf_counter()
            c.optimizer.zero_grad(set_to_none=True)
            with autocast_ctx(bf16):
                loss = c.loss_fn()
            loss.backward()
            t1 = time.perf_counter()
            c.optimizer.step()
            t2 = time.perf_counter()
            total += t2 - t0
            opt_time += t2 - t1
    finally:
        timer.remove()
    out = {k: 1e3 * v / steps for k, v in timer.totals.items()}
    out["optimizer.step"] = 1e3 * opt_time / steps
    out["other (masking, gathers, patch-embed bwd, ...)"] = 1e3 * total / steps - sum(out.values())
    out["total step"] = 1e3 * total / steps
    return out


def print_breakdown(om: dict[str, float], hf: dict[str, float]) -> None:
    """Both models' sections side by side (ms per step); a section HF lacks is shown as "-"."""
    print("  per-step breakdown, ms (mean over profiled steps; sections timed with module hooks)")
    print(f"    {'section':<48s} {'omnimask':>9s} {'hf':>9s}")
    for k in list(dict.fromkeys([*om, *hf])):
        cells = [f"{d[k]:9.1f}" if k in d else f"{'-':>9s}" for d in (om, hf)]
        print(f"    {k:<48s} {cells[0]} {cells[1]}")


def print_top_ops(c: Contender, steps: int, bf16: bool, top: int = 12) -> None:
    """torch.profiler's heaviest ops by self CPU time, to see *which* kernels differ between models."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            train_step(c, bf16)
    print(f"  {c.name}: top {top} ops by self CPU time over {steps} step(s)")
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=48)
    print("\n".join("    " + line for line in table.splitlines()))


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def available_cores() -> int:
    # The affinity mask, not os.cpu_count(): containers and taskset often allow fewer cores than exist.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Build each model from the same seed so runs are repeatable (weights differ between libraries anyway)."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def bench_config(name: str, cfg: BenchConfig, args: argparse.Namespace) -> dict[str, Any]:
    b = args.batch_size
    with seeded(0):
        om = build_omnimask(cfg).train()
    with seeded(0):
        hf = build_hf(cfg).train()

    counts = {
        "omnimask": count_params(om, trainable_only=False),
        "omnimask_trainable": count_params(om, trainable_only=True),
        "hf_total": count_params(hf, trainable_only=False),
        "hf_trainable": count_params(hf, trainable_only=True),
    }
    print(
        f"[{name}] parameters: omnimask {counts['omnimask']:,} (trainable {counts['omnimask_trainable']:,}); "
        f"HF {counts['hf_total']:,} total, {counts['hf_trainable']:,} trainable "
        f"(HF's difference = frozen sin-cos position tables)"
    )
    # Equal trainable counts show the two models are the same architecture, so timing them is fair.
    assert counts["omnimask_trainable"] == counts["hf_trainable"], f"trainable parameter counts differ: {counts}"

    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(b, cfg.in_chans, cfg.image_size, cfg.image_size, generator=gen)
    noise = torch.rand(b, cfg.num_patches, generator=gen)

    contenders = [
        make_contender("omnimask", om, lambda: om({"image": x}, noise={"image": noise}).loss),
        make_contender("hf", hf, lambda: hf(pixel_values=x, noise=noise).loss),
    ]
    if args.compile:
        # A separate instance so the eager omnimask row stays eager; compile time is spent in warm-up.
        with seeded(0):
            om_c = build_omnimask(cfg).train()
        compiled = torch.compile(om_c)
        contenders.append(
            make_contender("omnimask_compiled", om_c, lambda: compiled({"image": x}, noise={"image": noise}).loss)
        )

    t0 = time.perf_counter()
    # At least one warm-up round: it allocates AdamW state and (with --compile) triggers compilation.
    warmup = max(args.warmup, 1) if args.compile else args.warmup
    interleaved_rounds(contenders, warmup, args.bf16, record=False)
    warm_s = time.perf_counter() - t0
    interleaved_rounds(contenders, args.steps, args.bf16, record=True)

    res: dict[str, Any] = {
        "config": name,
        "shape": asdict(cfg),
        "batch_size": b,
        "params": counts,
        "hf_attn_implementation": hf.config._attn_implementation,
        "warmup_s": warm_s,
    }
    for c in contenders:
        res[c.name] = summarize(c, b)
    res["ratio"] = res["omnimask"]["images_per_s"] / res["hf"]["images_per_s"]
    if args.compile:
        res["ratio_compiled"] = res["omnimask_compiled"]["images_per_s"] / res["hf"]["images_per_s"]

    line = f"[{name}] batch {b}: omnimask {res['omnimask']['images_per_s']:.2f} img/s, HF {res['hf']['images_per_s']:.2f} img/s, ratio {res['ratio']:.3f}"
    if args.compile:
        line += f"; compiled omnimask {res['omnimask_compiled']['images_per_s']:.2f} img/s (ratio {res['ratio_compiled']:.3f})"
    print(line, flush=True)

    if args.profile:
        n = max(1, args.profile_steps)
        om_ms = profile_breakdown(contenders[0], omnimask_sections(om), n, args.bf16)
        hf_ms = profile_breakdown(contenders[1], hf_sections(hf), n, args.bf16)
        print_breakdown(om_ms, hf_ms)
        print_top_ops(contenders[0], n, args.bf16)
        print_top_ops(contenders[1], n, args.bf16)
        res["profile_ms"] = {"omnimask": om_ms, "hf": hf_ms}

    # Free both models (and AdamW state) before the next, larger configuration is built.
    del contenders
    gc.collect()
    return res


def write_markdown(path: Path, meta: dict[str, Any], results: list[dict[str, Any]]) -> None:
    lines = [
        "# MAE pretraining step: omnimask vs transformers ViTMAEForPreTraining",
        "",
        f"{meta['date']} · torch {meta['torch']} · transformers {meta['transformers']} · {meta['cpu_model']} · "
        f"{meta['threads']} thread(s) · {meta['dtype']} · {meta['steps']} timed steps after {meta['warmup']} warm-up, interleaved",
        "",
        "| config | batch | params (trainable) | omnimask img/s | HF img/s | ratio (omnimask/HF) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['config']} | {r['batch_size']} | {r['params']['omnimask_trainable']:,} | "
            f"{r['omnimask']['images_per_s']:.2f} | {r['hf']['images_per_s']:.2f} | {r['ratio']:.3f} |"
        )
    if any("omnimask_compiled" in r for r in results):
        lines += ["", "| config | compiled omnimask img/s | ratio (compiled/HF eager) |", "|---|---|---|"]
        for r in results:
            if "omnimask_compiled" in r:
                lines.append(
                    f"| {r['config']} | {r['omnimask_compiled']['images_per_s']:.2f} | {r['ratio_compiled']:.3f} |"
                )
    lines += [
        "",
        "Ratio > 1 means omnimask is faster. Medians of per-step wall time; compare ratios only within one run.",
        "",
    ]
    path.write_text("\n".join(lines))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--configs", default="vit-s16,vit-b16", help=f"comma-separated, from {list(CONFIGS)}")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=5, help="timed steps per model")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per model before timing")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: all available cores)")
    p.add_argument("--bf16", action="store_true", help="run both models under CPU bfloat16 autocast")
    p.add_argument("--compile", action="store_true", help="add a row for omnimask under torch.compile")
    p.add_argument("--profile", action="store_true", help="print a per-section breakdown and top ops for both models")
    p.add_argument("--profile-steps", type=int, default=2, help="steps averaged by --profile")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/mae_step.json"))
    args = p.parse_args(argv)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown or not names:
        p.error(f"unknown config(s) {unknown}; choose from {list(CONFIGS)}")
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        p.error("--steps and --batch-size must be >= 1, --warmup >= 0")
    args.config_names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = args.threads or available_cores()
    torch.set_num_threads(threads)
    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "omnimask": omnimask.__version__,
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cores_available": available_cores(),
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "dtype": "bf16-autocast" if args.bf16 else "fp32",
        "compile": args.compile,
        "mask_ratio": MASK_RATIO,
        "norm_pix": True,
        "device": "cpu",
        "method": "interleaved rounds (order reversed every other round), median per-step wall time",
    }
    print(
        f"torch {meta['torch']}, transformers {meta['transformers']}, {meta['cpu_model']}, "
        f"{meta['threads']} thread(s), {meta['dtype']}",
        flush=True,
    )
    results = [bench_config(n, CONFIGS[n], args) for n in args.config_names]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    md = args.out.with_suffix(".md")
    write_markdown(md, meta, results)
    print(f"wrote {args.out} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
