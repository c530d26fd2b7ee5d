"""Memory per GPU of MAE pretraining (ViT-B/16, ViT-L/16, ViT-H/14), computed from first principles.

Nothing here needs a GPU: the numbers come from the architecture, the batch and the strategy. The
``--measure`` flag checks them where a CUDA device exists, with a plain-PyTorch MAE of the same shape.

Usage (from the repository root)::

    python benchmarks/memory_estimate.py                     # text table, 8 GPUs
    python benchmarks/memory_estimate.py --gpus 16 --markdown
    python benchmarks/memory_estimate.py --json out.json
    python benchmarks/memory_estimate.py --measure --models vit-b16 --batches 64 --precisions bf16

Model (MAE, He et al. 2021, the official code's ``models_mae.py``): encoder ViT-B/16 (768 wide, 12
blocks, 12 heads), ViT-L/16 (1024, 24, 16) or ViT-H/14 (1280, 32, 16), MLP ratio 4; decoder 512 wide,
8 blocks, 16 heads; 224x224 images, mask ratio 0.75. The encoder sees the cls token and
``int(0.25 * patches)`` visible patches (50 tokens for /16, 65 for /14); the decoder sees every patch
and the cls token (197 or 257 tokens).

Parameters, counted exactly: patch-embedding conv (with bias), cls token; per block two LayerNorms,
qkv Linear with bias, proj, fc1, fc2; the encoder's final LayerNorm; decoder embedding Linear, mask
token, decoder blocks, decoder LayerNorm, prediction Linear to ``patch * patch * 3``. The position
tables are fixed sin-cos buffers, not parameters (counted separately as ``fixed_tables``).

Memory per GPU, the columns of the table:

* ``state``: fp32 weights (4 B/param), fp32 gradients (4) and AdamW's two fp32 moments (8): 16 B/param.
  bf16 autocast keeps fp32 master weights, so it is 16 B/param as well. ``fsdp`` divides it by the
  number of GPUs N.
* ``buffers``: what the strategy and precision add on top. ``ddp``: the gradient buckets (4 B/param:
  DDP copies gradients into flat buckets unless ``gradient_as_bucket_view=True``) and, with bf16,
  autocast's cached bf16 copy of every weight (2 B/param, held for the backward pass). ``fsdp``: the
  root unit's parameters (everything outside the blocks, gathered for the whole step), twice the
  largest block's gathered parameters (the block running and the one prefetched; bf16 with bf16, else
  fp32) and that block's unsharded fp32 gradient before its reduce-scatter. ``single`` (one process,
  no wrapper, what ``--measure`` runs): the autocast copy only.
* ``activations``: what autograd keeps from the forward for the backward pass, per block
  ``34 * s * b * h`` bytes with 16-bit activations (Korthikanti et al. 2022, "Reducing Activation
  Recomputation in Large Transformer Models", eq. 1, without its ``5 * a * s / h`` term: SDPA's
  flash/memory-efficient kernels store no s x s attention matrix), twice that in fp32. Two deviations
  of a real MAE step roughly cancel: the 34 includes 2 ``sbh`` of dropout masks MAE does not have, and
  under autocast the LayerNorms run in fp32 and keep their fp32 input (about +4 ``sbh``). With
  activation checkpointing only each block's input is kept (the fp32 residual stream, 4 bytes per
  element in either precision) plus one block's full activations during its recompute (the largest
  block). Outside the blocks: the fp32 input images, the inputs of the two final LayerNorms (fp32) and
  of the two linear heads, the prediction, the fp32 target and the squared error.
* ``overhead``: not in ``torch.cuda.max_memory_allocated``, stated apart: the CUDA context and
  kernels (``--context-gib``, default 0.75 GiB; 0.5-1 GiB depending on the driver and libraries, plus
  NCCL's buffers under several processes) and an allowance for the caching allocator's fragmentation
  (``--fragmentation``, default 10 % of the allocated bytes).
* ``total``: the peak of allocated bytes (state + buffers + activations, the start of the backward
  pass, an upper bound: gradients fill in while activations are freed) or of the optimizer step
  (state + buffers + about 4 B/param of temporaries of the foreach AdamW, activations freed), the
  larger, plus the overhead. ``nvidia-smi`` shows about this much.

GiB = 2**30 bytes. ``--measure`` builds the same model in plain PyTorch (Linear/LayerNorm blocks with
``F.scaled_dot_product_attention``), runs two forward+backward+AdamW steps on one GPU and reports the
second step's ``torch.cuda.max_memory_allocated`` next to the estimate for ``single`` without overhead.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

GIB = 2**30
STRATEGIES = ("ddp", "fsdp")  # the table's; "single" (one process, no wrapper) is what --measure runs
PRECISIONS = ("fp32", "bf16")
BLOCK_ACT_BYTES_16BIT = 34  # Korthikanti et al. 2022, per s*b*h element, flash/efficient attention
RESIDUAL_BYTES = 4  # the residual stream (a checkpointed block's input) is fp32, under autocast too
ADAMW_TEMP_BYTES = 4  # foreach AdamW: one fp32 temporary per parameter (sqrt of the second moment)


@dataclass(frozen=True)
class MAEShape:
    """An MAE model: ViT encoder + transformer decoder, square images."""

    name: str
    dim: int
    depth: int
    heads: int
    patch_size: int = 16
    image_size: int = 224
    in_chans: int = 3
    mlp_ratio: float = 4.0
    dec_dim: int = 512
    dec_depth: int = 8
    dec_heads: int = 16
    mask_ratio: float = 0.75

    @property
    def num_patches(self) -> int:
        """Patches per image."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def enc_tokens(self) -> int:
        """cls + the visible patches (MAE keeps ``int(L * (1 - mask_ratio))``)."""
        return 1 + int(self.num_patches * (1 - self.mask_ratio))

    @property
    def dec_tokens(self) -> int:
        """cls + every patch."""
        return 1 + self.num_patches

    @property
    def patch_dim(self) -> int:
        """Pixel values per patch (the prediction target's width)."""
        return self.patch_size**2 * self.in_chans


MODELS: dict[str, MAEShape] = {
    "vit-b16": MAEShape("vit-b16", dim=768, depth=12, heads=12, patch_size=16),
    "vit-l16": MAEShape("vit-l16", dim=1024, depth=24, heads=16, patch_size=16),
    "vit-h14": MAEShape("vit-h14", dim=1280, depth=32, heads=16, patch_size=14),
}


# ------------------------------------------------------------------------------------------ parameters


def linear_params(fan_in: int, fan_out: int, bias: bool = True) -> int:
    """Weights (and bias) of ``nn.Linear(fan_in, fan_out)``."""
    return fan_in * fan_out + (fan_out if bias else 0)


def block_params(dim: int, mlp_ratio: float) -> int:
    """One pre-norm ViT block: 2 LayerNorms, qkv (with bias), proj, fc1, fc2."""
    hidden = int(dim * mlp_ratio)
    norms = 2 * 2 * dim
    attention = linear_params(dim, 3 * dim) + linear_params(dim, dim)
    mlp = linear_params(dim, hidden) + linear_params(hidden, dim)
    return norms + attention + mlp


def param_counts(shape: MAEShape) -> dict[str, int]:
    """Exact parameter counts of the MAE pretraining model (position tables are buffers, apart)."""
    enc_block = block_params(shape.dim, shape.mlp_ratio)
    dec_block = block_params(shape.dec_dim, shape.mlp_ratio)
    patch_embed = shape.in_chans * shape.patch_size**2 * shape.dim + shape.dim
    enc_root = patch_embed + shape.dim + 2 * shape.dim  # conv, cls token, final LayerNorm
    dec_root = (
        linear_params(shape.dim, shape.dec_dim)  # decoder_embed
        + shape.dec_dim  # mask token
        + 2 * shape.dec_dim  # decoder LayerNorm
        + linear_params(shape.dec_dim, shape.patch_dim)  # decoder_pred
    )
    encoder = enc_root + shape.depth * enc_block
    decoder = dec_root + shape.dec_depth * dec_block
    return {
        "encoder": encoder,
        "decoder": decoder,
        "total": encoder + decoder,
        "root": enc_root + dec_root,  # outside every block: the FSDP root unit
        "largest_block": max(enc_block, dec_block),
        "encoder_block": enc_block,
        "decoder_block": dec_block,
        "fixed_tables": shape.dec_tokens * (shape.dim + shape.dec_dim),  # sin-cos buffers, not trained
    }


# ------------------------------------------------------------------------------------------ memory


def block_activation_bytes(tokens: int, batch: int, dim: int, precision: str) -> int:
    """Bytes one transformer block keeps for backward: 34 s*b*h in 16 bit, twice that in fp32."""
    per_element = BLOCK_ACT_BYTES_16BIT if precision == "bf16" else 2 * BLOCK_ACT_BYTES_16BIT
    return per_element * tokens * batch * dim


def blocks_activation_bytes(shape: MAEShape, batch: int, precision: str, ckpt: bool) -> int:
    """All encoder and decoder blocks; with checkpointing their inputs + one block recomputed."""
    enc = block_activation_bytes(shape.enc_tokens, batch, shape.dim, precision)
    dec = block_activation_bytes(shape.dec_tokens, batch, shape.dec_dim, precision)
    if not ckpt:
        return shape.depth * enc + shape.dec_depth * dec
    enc_inputs = shape.depth * shape.enc_tokens * shape.dim
    dec_inputs = shape.dec_depth * shape.dec_tokens * shape.dec_dim
    return RESIDUAL_BYTES * batch * (enc_inputs + dec_inputs) + max(enc, dec)


def outside_blocks_activation_bytes(shape: MAEShape, batch: int, precision: str) -> int:
    """Images, final LayerNorm inputs (fp32), the two heads' inputs, prediction, target, squared error."""
    act = 2 if precision == "bf16" else 4
    images = 4 * shape.in_chans * shape.image_size**2
    norm_inputs = 4 * (shape.enc_tokens * shape.dim + shape.dec_tokens * shape.dec_dim)
    head_inputs = act * (shape.enc_tokens * shape.dim + shape.dec_tokens * shape.dec_dim)
    prediction = act * shape.dec_tokens * shape.patch_dim
    target_and_error = 2 * 4 * shape.num_patches * shape.patch_dim
    return batch * (images + norm_inputs + head_inputs + prediction + target_and_error)


def activation_bytes(shape: MAEShape, batch: int, precision: str, ckpt: bool) -> int:
    """Every activation kept for the backward pass of one step."""
    return blocks_activation_bytes(shape, batch, precision, ckpt) + outside_blocks_activation_bytes(
        shape, batch, precision
    )


def state_bytes(params: int, strategy: str, gpus: int) -> float:
    """fp32 weights + fp32 gradients + AdamW's two fp32 moments, divided over the GPUs by fsdp."""
    total = 16 * params
    return total / gpus if strategy == "fsdp" else float(total)


def buffer_bytes(counts: dict[str, int], strategy: str, precision: str) -> int:
    """What the strategy and precision hold besides the state (see the module docstring)."""
    params = counts["total"]
    autocast_copy = 2 * params if precision == "bf16" else 0
    if strategy == "single":
        return autocast_copy
    if strategy == "ddp":
        return 4 * params + autocast_copy
    if strategy == "fsdp":
        gathered = 2 if precision == "bf16" else 4
        return gathered * (counts["root"] + 2 * counts["largest_block"]) + 4 * counts["largest_block"]
    raise ValueError(f"unknown strategy {strategy!r}; expected one of {(*STRATEGIES, 'single')}")


def optimizer_step_bytes(params: int, strategy: str, gpus: int) -> float:
    """Allocated during ``AdamW.step()``: the state, DDP's buckets and the foreach temporaries (the
    activations, autocast copies and gathered FSDP units are freed by then)."""
    buckets = 4 * params if strategy == "ddp" else 0
    temps = ADAMW_TEMP_BYTES * params / (gpus if strategy == "fsdp" else 1)
    return state_bytes(params, strategy, gpus) + buckets + temps


@dataclass(frozen=True)
class Estimate:
    """One row of the table; sizes in GiB per GPU."""

    model: str
    batch: int
    precision: str
    strategy: str
    ckpt: bool
    gpus: int
    params: int
    state: float
    buffers: float
    activations: float
    overhead: float
    total: float
    peak: str  # "backward" (total = the four columns) or "step" (the optimizer step's peak is higher)


def estimate(
    shape: MAEShape,
    batch: int,
    precision: str,
    strategy: str,
    ckpt: bool,
    gpus: int = 8,
    context_gib: float = 0.75,
    fragmentation: float = 0.10,
) -> Estimate:
    """Memory per GPU of one MAE pretraining step (see the module docstring for every term)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    counts = param_counts(shape)
    state = state_bytes(counts["total"], strategy, gpus)
    buffers = buffer_bytes(counts, strategy, precision)
    acts = activation_bytes(shape, batch, precision, ckpt)
    backward_peak = state + buffers + acts
    step_peak = optimizer_step_bytes(counts["total"], strategy, gpus)
    allocated = max(backward_peak, step_peak)
    overhead = context_gib * GIB + fragmentation * allocated
    return Estimate(
        model=shape.name,
        batch=batch,
        precision=precision,
        strategy=strategy,
        ckpt=ckpt,
        gpus=gpus,
        params=counts["total"],
        state=state / GIB,
        buffers=buffers / GIB,
        activations=acts / GIB,
        overhead=overhead / GIB,
        total=(allocated + overhead) / GIB,
        peak="backward" if backward_peak >= step_peak else "step",
    )


def table(
    models: Sequence[str],
    batches: Sequence[int],
    precisions: Sequence[str],
    ckpts: Sequence[bool],
    gpus: int,
    context_gib: float = 0.75,
    fragmentation: float = 0.10,
) -> list[Estimate]:
    """Every combination, model-major (model, batch, precision, strategy, checkpointing)."""
    return [
        estimate(MODELS[m], b, p, s, c, gpus, context_gib, fragmentation)
        for m in models
        for b in batches
        for p in precisions
        for s in STRATEGIES
        for c in ckpts
    ]


# ------------------------------------------------------------------------------------------ output

COLUMNS = (
    "model",
    "batch/GPU",
    "precision",
    "strategy",
    "act. ckpt",
    "state",
    "buffers",
    "activations",
    "overhead",
    "total",
    "peak in",
)
NUMERIC = range(5, 10)  # the GiB columns, right-aligned


def row_cells(e: Estimate) -> list[str]:
    """The table cells of one estimate (sizes in GiB, 2 decimals)."""
    sizes = (e.state, e.buffers, e.activations, e.overhead, e.total)
    flags = [e.model, str(e.batch), e.precision, e.strategy, "yes" if e.ckpt else "no"]
    return [*flags, *(f"{x:.2f}" for x in sizes), e.peak]


def to_markdown(rows: Sequence[Estimate]) -> str:
    """A Markdown table (GiB per GPU)."""
    head = "| " + " | ".join(COLUMNS) + " |"
    rule = "|" + "|".join("---:" if i in NUMERIC else "---" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(row_cells(e)) + " |" for e in rows]
    return "\n".join([head, rule, *body])


def to_text(rows: Sequence[Estimate]) -> str:
    """An aligned plain-text table (GiB per GPU)."""
    cells = [list(COLUMNS)] + [row_cells(e) for e in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.rjust(w) if i in NUMERIC else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        for r in cells
    ]
    return "\n".join(lines)


def param_report() -> dict[str, dict[str, int]]:
    """The parameter counts of every model in ``MODELS``."""
    return {name: param_counts(shape) for name, shape in MODELS.items()}


def describe_params() -> str:
    """Parameter counts in millions, one line per model."""
    lines = []
    for name, c in param_report().items():
        lines.append(
            f"{name}: total {c['total'] / 1e6:.2f}M trainable (encoder {c['encoder'] / 1e6:.2f}M, decoder "
            f"{c['decoder'] / 1e6:.2f}M), + {c['fixed_tables'] / 1e6:.2f}M fixed sin-cos table entries"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ the model --measure builds


class Block(nn.Module):
    """Pre-norm ViT block: LayerNorm, qkv Linear, SDPA, proj; LayerNorm, fc1, GELU, fc2."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, int(dim * mlp_ratio))
        self.fc2 = nn.Linear(int(dim * mlp_ratio), dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, tokens, dim)`` -> same shape."""
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, s, d)
        x = x + self.proj(attn)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


def sincos_table(tokens: int, dim: int) -> Tensor:
    """A fixed 1-D sin-cos position table ``(1, tokens, dim)`` (MAE's is 2-D; same size, same role)."""
    pos = torch.arange(tokens, dtype=torch.float32)[:, None]
    freq = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float32) / (dim // 2))
    return torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=1)[None]


def run_blocks(blocks: nn.ModuleList, x: Tensor, ckpt: bool) -> Tensor:
    """Apply ``blocks`` in order, each recomputed in backward when ``ckpt``."""
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False) if ckpt and torch.is_grad_enabled() else block(x)
    return x


class MiniMAE(nn.Module):
    """MAE pretraining model in plain PyTorch (random masking, norm-pix MSE on the masked patches)."""

    def __init__(self, shape: MAEShape) -> None:
        super().__init__()
        self.shape = shape
        s = shape
        self.patch_embed = nn.Conv2d(s.in_chans, s.dim, s.patch_size, stride=s.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, s.dim))
        self.register_buffer("pos_embed", sincos_table(s.dec_tokens, s.dim), persistent=False)
        self.blocks = nn.ModuleList(Block(s.dim, s.heads, s.mlp_ratio) for _ in range(s.depth))
        self.norm = nn.LayerNorm(s.dim, eps=1e-6)
        self.decoder_embed = nn.Linear(s.dim, s.dec_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, s.dec_dim))
        self.register_buffer("decoder_pos_embed", sincos_table(s.dec_tokens, s.dec_dim), persistent=False)
        self.decoder_blocks = nn.ModuleList(Block(s.dec_dim, s.dec_heads, s.mlp_ratio) for _ in range(s.dec_depth))
        self.decoder_norm = nn.LayerNorm(s.dec_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(s.dec_dim, s.patch_dim)
        self.ckpt = False

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Visible tokens through the encoder; returns (latent, mask, ids_restore)."""
        x = self.patch_embed(images).flatten(2).transpose(1, 2) + self.pos_embed[:, 1:]
        b, n, d = x.shape
        keep = self.shape.enc_tokens - 1
        ids_shuffle = torch.argsort(torch.rand(b, n, device=x.device), dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        x = torch.gather(x, 1, ids_shuffle[:, :keep, None].expand(-1, -1, d))
        mask = torch.ones(b, n, device=x.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(b, -1, -1)
        x = run_blocks(self.blocks, torch.cat([cls, x], dim=1), self.ckpt)
        return self.norm(x), mask, ids_restore

    def decode(self, latent: Tensor, ids_restore: Tensor) -> Tensor:
        """Every patch (mask tokens where hidden) through the decoder; returns (b, patches, patch_dim)."""
        x = self.decoder_embed(latent)
        b, n = ids_restore.shape
        tokens = torch.cat([x[:, 1:], self.mask_token.expand(b, n + 1 - x.shape[1], -1)], dim=1)
        tokens = torch.gather(tokens, 1, ids_restore[:, :, None].expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], tokens], dim=1) + self.decoder_pos_embed
        x = run_blocks(self.decoder_blocks, x, self.ckpt)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def forward(self, images: Tensor) -> Tensor:
        """The norm-pix MSE loss on the masked patches."""
        latent, mask, ids_restore = self.encode(images)
        pred = self.decode(latent, ids_restore)
        p = self.shape.patch_size
        b, c, h, w = images.shape
        target = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, -1, p * p * c)
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
        loss = ((pred.float() - target) ** 2).mean(-1)
        return (loss * mask).sum() / mask.sum()


def measure_peak(shape: MAEShape, batch: int, precision: str, ckpt: bool) -> int:
    """``max_memory_allocated`` of the second forward+backward+AdamW step on the current CUDA device."""
    device = torch.device("cuda")
    model = MiniMAE(shape).to(device)
    model.ckpt = ckpt
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    images = torch.randn(batch, shape.in_chans, shape.image_size, shape.image_size, device=device)
    try:
        for step in range(2):  # step 0 allocates AdamW's moments; step 1 is the steady state
            if step == 1:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = model(images)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    finally:
        del model, optimizer, images
        gc.collect()
        torch.cuda.empty_cache()


def measure(
    models: Sequence[str], batches: Sequence[int], precisions: Sequence[str], ckpts: Sequence[bool]
) -> list[dict[str, Any]]:
    """Measured peak vs the ``single`` estimate (allocated bytes, no overhead), one row per setting."""
    rows = []
    for m in models:
        for b in batches:
            for p in precisions:
                for c in ckpts:
                    est = estimate(MODELS[m], b, p, "single", c, gpus=1, context_gib=0.0, fragmentation=0.0)
                    try:
                        measured: float | None = measure_peak(MODELS[m], b, p, c) / GIB
                    except torch.cuda.OutOfMemoryError:
                        measured = None
                    ratio = None if measured is None else measured / est.total
                    rows.append({**asdict(est), "measured_gib": measured, "measured_over_estimate": ratio})
                    shown = "OOM" if measured is None else f"{measured:.2f} GiB ({ratio:.2f}x)"
                    print(
                        f"{m} batch {b} {p} ckpt={'yes' if c else 'no'}: estimate {est.total:.2f} GiB, measured {shown}"
                    )
    return rows


# ------------------------------------------------------------------------------------------ command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=8, help="processes (GPUs) that fsdp shards over")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {list(MODELS)}")
    parser.add_argument("--batches", default="64,128,256", help="per-GPU batch sizes, comma-separated")
    parser.add_argument("--precisions", default="fp32,bf16", help="fp32 and/or bf16, comma-separated")
    parser.add_argument("--ckpt", choices=("both", "on", "off"), default="both", help="activation checkpointing")
    parser.add_argument("--context-gib", type=float, default=0.75, help="CUDA context etc. per GPU (GiB)")
    parser.add_argument("--fragmentation", type=float, default=0.10, help="allocator allowance, share of allocated")
    parser.add_argument("--json", type=Path, help="also write the rows and parameter counts to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table instead of text")
    parser.add_argument("--measure", action="store_true", help="measure one step per setting on this CUDA device")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    args.ckpts = {"both": [False, True], "on": [True], "off": [False]}[args.ckpt]
    bad = [m for m in args.models if m not in MODELS] + [p for p in args.precisions if p not in PRECISIONS]
    if bad or args.gpus < 1 or any(b < 1 for b in args.batches):
        parser.error(f"unknown model/precision {bad}" if bad else "--gpus and batch sizes must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table (and write ``--json``), or measure with ``--measure``; returns the exit status."""
    args = parse_args(argv)
    if args.measure:
        if not torch.cuda.is_available():
            print("--measure needs a CUDA device; none is available here (the estimate needs none).", file=sys.stderr)
            return 2
        rows: list[dict[str, Any]] = measure(args.models, args.batches, args.precisions, args.ckpts)
        device = torch.cuda.get_device_name()
    else:
        est = table(
            args.models, args.batches, args.precisions, args.ckpts, args.gpus, args.context_gib, args.fragmentation
        )
        print(
            to_markdown(est)
            if args.markdown
            else f"{describe_params()}\n\nGiB per GPU, {args.gpus} GPUs:\n{to_text(est)}"
        )
        rows, device = [asdict(e) for e in est], None
    if args.json:
        report = {"gpus": args.gpus, "device": device, "params": param_report(), "rows": rows, "gib": GIB}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
