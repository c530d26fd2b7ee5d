"""docs/adding_a_modality.md, followed step by step for a third-party modality.

An ``ecg`` modality (1-D multi-lead signals cut into fixed-length chunks) is written into a temporary
folder as the guide lays it out: a package ``omnimask_ecg/`` (``tokenizer.py``, ``spec.py``,
``__init__.py`` importing ``spec``) beside the ``omnimask_ecg-0.1.dist-info/`` folder that
installing it would write (``METADATA`` + ``entry_points.txt`` declaring the ``omnimask.modalities``
entry point). Fresh interpreters with only that folder added to ``PYTHONPATH`` then find it, train one
step, save, reload (``from_pretrained`` and ``transformers.AutoModel``) and list it. Nothing in
omnimask or in the test suite names the modality.

A broken plugin (an entry point naming a module that does not exist) must fail loudly, naming the
entry point and its distribution.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import omnimask

#: Where the running omnimask comes from (added after the plugin folder, in case it is not installed).
_OMNIMASK_ROOT = str(Path(omnimask.__file__).resolve().parents[1])

# Step 1 of the guide: the tokenizer.
TOKENIZER_PY = '''
"""ECG tokenizer: (B, C, L) multi-lead signals -> one token per chunk of ``chunk`` samples.

Axis legend: b batch, C leads, L samples, n chunks (tokens), c samples per chunk.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from omnimask.backbone.pos_embed import sincos_1d
from omnimask.modalities import Tokenizer


class ECGTokenizer(Tokenizer):
    def __init__(self, dim: int, length: int = 96, chunk: int = 12, leads: int = 3) -> None:
        super().__init__()
        if length % chunk:
            raise ValueError(f"ecg: chunk {chunk} does not divide length {length}")
        self.length, self.chunk, self.channels = length, chunk, leads
        self.patch_dim = chunk * leads
        self.base_grid = (length // chunk,)
        self.proj = nn.Linear(self.patch_dim, dim)
        self.register_buffer("pos", self.positions(self.base_grid, dim), persistent=False)

    def grid(self, x: Tensor, interpolate_pos: bool = False) -> tuple[int, ...]:
        if x.ndim != 3 or x.shape[1:] != (self.channels, self.length):
            raise ValueError(f"ecg: expected (B, {self.channels}, {self.length}), got {tuple(x.shape)}")
        return self.base_grid

    def positions(self, grid: tuple[int, ...], dim: int) -> Tensor:
        return sincos_1d(dim, torch.arange(grid[0])).float()

    def forward(self, x: Tensor, interpolate_pos: bool = False) -> tuple[Tensor, tuple[int, ...]]:
        grid = self.grid(x, interpolate_pos)
        return self.proj(self.patchify(x)) + self.pos, grid

    def patchify(self, x: Tensor) -> Tensor:
        return rearrange(x, "b C (n c) -> b n (c C)", c=self.chunk)

    def unpatchify(self, patches: Tensor, grid: tuple[int, ...]) -> Tensor:
        return rearrange(patches, "b n (c C) -> b C (n c)", n=grid[0], c=self.chunk)
'''

# Step 2: the registration.
SPEC_PY = '''
"""The ``ecg`` modality's registration."""

from __future__ import annotations

import torch
from torch import Tensor

from omnimask.modalities import ModalitySpec, register_modality

from .tokenizer import ECGTokenizer


def _example_input(tokenizer_cfg: dict, batch_size: int) -> Tensor:
    return torch.randn(batch_size, tokenizer_cfg["leads"], tokenizer_cfg["length"])


register_modality(
    ModalitySpec(
        name="ecg",
        tokenizer=ECGTokenizer,
        example_input=_example_input,
        masking={"name": "random", "ratio": 0.5},
        decoder={"name": "transformer", "dim": 16, "depth": 1, "num_heads": 2},
        objective={"name": "mse", "norm": "none"},
        description="multi-lead ECG signals in fixed-length chunks",
    )
)
'''

# Step 3: the package imports its spec (that import is the registration).
INIT_PY = '''
"""The ``ecg`` modality: multi-lead ECG signals cut into fixed-length chunks."""

from . import spec  # noqa: F401  (registers "ecg")
from .tokenizer import ECGTokenizer

__all__ = ["ECGTokenizer"]
'''


def write_distribution(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """Lay out in ``root`` what ``pip install`` of distribution ``dist`` would: its files and its
    ``<dist>-0.1.dist-info/`` (``METADATA`` and ``entry_points.txt``, group ``omnimask.modalities``)."""
    for rel, text in modules.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    info.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    info.joinpath("entry_points.txt").write_text(f"[omnimask.modalities]\n{lines}", encoding="utf-8")


def start_python(args: list[str], plugins: Path, cwd: Path) -> subprocess.Popen:
    """A fresh interpreter that sees the plugin folder (as if installed), run outside the checkout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugins), _OMNIMASK_ROOT])}
    cmd = [sys.executable, *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> str:
    """Wait for ``proc``; its stdout, after checking it succeeded."""
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    what = "python -c <script>" if proc.args[1] == "-c" else " ".join(proc.args[1:])
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{out}\n{err}"
    return out


def run_python(args: list[str], plugins: Path, cwd: Path) -> str:
    return finish(start_python(args, plugins, cwd))


TRAIN_AND_SAVE = """
import sys
import torch
from omnimask import OmniMaskConfig, OmniMaskForPreTraining
from omnimask.modalities import MODALITIES

assert "ecg" in MODALITIES.names(), MODALITIES.names()
torch.manual_seed(0)
model = OmniMaskForPreTraining(
    OmniMaskConfig(encoder={"dim": 32, "depth": 1, "num_heads": 2}, modalities={"ecg": {}})
)
assert model.config.modalities["ecg"]["tokenizer"] == {"length": 96, "chunk": 12, "leads": 3}
x = MODALITIES.get("ecg").example_input(model.config.modalities["ecg"]["tokenizer"], 4)
out = model({"ecg": x})
assert torch.isfinite(out.loss) and out.pred["ecg"].shape == (4, 8, 36), out.pred["ecg"].shape
assert out.mask["ecg"].sum(1).tolist() == [4, 4, 4, 4]  # ratio 0.5 of 8 chunks hidden
tok = model.omnimask.tokenizers["ecg"]
assert torch.equal(tok.unpatchify(tok.patchify(x), out.grids["ecg"]), x)
out.loss.backward()
assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
model.save_pretrained(sys.argv[1])
model.eval()
mask = out.mask["ecg"]
with torch.no_grad():
    pred = model({"ecg": x}, masks={"ecg": mask}).pred["ecg"]
    hidden = model.omnimask({"ecg": x}, masks={"ecg": mask}).last_hidden_state
torch.save({"x": x, "mask": mask, "pred": pred, "hidden": hidden}, sys.argv[2])
"""

LOAD_AND_COMPARE = """
import sys
import torch
import omnimask  # registers the classes with transformers' Auto classes
from transformers import AutoModel
from omnimask import OmniMaskForPreTraining, OmniMaskModel

saved = torch.load(sys.argv[2])
x, masks = saved["x"], {"ecg": saved["mask"]}
pretraining = OmniMaskForPreTraining.from_pretrained(sys.argv[1])
encoder = AutoModel.from_pretrained(sys.argv[1])
assert isinstance(encoder, OmniMaskModel), type(encoder)
with torch.no_grad():
    pred = pretraining({"ecg": x}, masks=masks).pred["ecg"]
    via_pretraining = pretraining.omnimask({"ecg": x}, masks=masks).last_hidden_state
    via_auto = encoder({"ecg": x}, masks=masks).last_hidden_state
assert torch.equal(pred, saved["pred"]), (pred - saved["pred"]).abs().max()
assert torch.equal(via_pretraining, saved["hidden"]), (via_pretraining - saved["hidden"]).abs().max()
assert torch.equal(via_auto, saved["hidden"]), (via_auto - saved["hidden"]).abs().max()
"""

BROKEN_LOOKUP = """
from omnimask.modalities import MODALITIES

for attempt in range(2):  # a failed discovery is retried by the next lookup, and fails the same way
    try:
        MODALITIES.names()
    except ImportError as err:
        print(err)
    else:
        raise SystemExit("a broken entry point was silently ignored")
"""


def test_a_third_party_modality_trains_saves_reloads_and_is_listed(tmp_path):
    plugins, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    write_distribution(
        plugins,
        "omnimask-ecg",
        {"ecg": "omnimask_ecg"},
        {
            "omnimask_ecg/tokenizer.py": TOKENIZER_PY,
            "omnimask_ecg/spec.py": SPEC_PY,
            "omnimask_ecg/__init__.py": INIT_PY,
        },
    )
    model_dir, io_file = work / "ecg-mae", work / "io.pt"
    listing = start_python(["-m", "omnimask", "list"], plugins, work)  # runs meanwhile: each process takes seconds
    try:
        run_python(["-c", TRAIN_AND_SAVE, str(model_dir), str(io_file)], plugins, work)
        assert {p.name for p in model_dir.iterdir()} >= {"config.json", "model.safetensors"}
        run_python(["-c", LOAD_AND_COMPARE, str(model_dir), str(io_file)], plugins, work)
        out = finish(listing)
    finally:
        if listing.poll() is None:
            listing.kill()
            listing.communicate()
    assert re.search(r"^\s+ecg\s+multi-lead ECG signals in fixed-length chunks$", out, re.M), out


def test_a_broken_entry_point_names_itself_and_its_distribution(tmp_path):
    plugins, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    write_distribution(plugins, "omnimask-broken", {"broken": "omnimask_no_such_module"}, {})

    message = run_python(["-c", BROKEN_LOOKUP], plugins, work).strip().splitlines()
    assert len(message) == 2 and message[0] == message[1], message
    for part in ("'broken'", "'omnimask_no_such_module'", "'omnimask-broken'", "'omnimask.modalities'"):
        assert part in message[0], (part, message[0])
