"""Device plumbing, checked on the CPU: one resolver for device strings, `--device` on every
command that runs a network, and no tensor created off the model's device inside inversion and
editing (a GPU would fail there with a device mismatch, or silently copy every step)."""
from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch.overrides import TorchFunctionMode

from realedit.cli import cli
from realedit.device import default_batch, resolve_device
from realedit.errors import UsageError
from realedit.pipeline import Editor

from tiny_model import make_tiny_model

skimage_data = pytest.importorskip("skimage.data")
PACKAGE = str(Path(__file__).resolve().parents[1] / "realedit")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(" CPU ")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    auto = resolve_device("auto")
    assert resolve_device(None) == auto
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    for bad in ("tpu", "cuda:x", "cuda:-1", "", "gpu0"):
        with pytest.raises(UsageError, match="device"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        for bad in ("cuda", "cuda:0"):
            with pytest.raises(UsageError, match="no CUDA GPU"):
                resolve_device(bad)
    else:
        with pytest.raises(UsageError, match="only"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    assert default_batch(torch.device("cpu")) >= 1


@pytest.mark.parametrize("command", [
    ["edit", "{photo}", "--attr", "age=+1"],
    ["eval", "{photo}", "--attr", "age=+1"],
    ["train-gan", "--data", "{photo}", "--run", "{run}"],
    ["train-encoder", "--model", "realedit-celeba64", "--steps", "1"],
    ["directions", "fit", "--model", "realedit-celeba64", "--scorer", "brightness", "-o", "{run}/b"],
], ids=lambda c: c[0] if c[0] != "directions" else "directions-fit")
def test_every_network_command_refuses_a_bad_device(command, tmp_path):
    photo = tmp_path / "p.jpg"
    Image.new("RGB", (64, 64)).save(photo)
    args = [a.format(photo=photo, run=tmp_path / "run") for a in command] + ["--device", "tpu:0"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "unknown device 'tpu:0'" in lines[0], res.output
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- tensors' devices

FACTORIES = {torch.zeros, torch.ones, torch.full, torch.empty, torch.rand, torch.randn,
             torch.randint, torch.randperm, torch.arange, torch.linspace, torch.eye, torch.tensor}
# Host-side on purpose: check_edits' probe only validates amounts against the (numpy) bank.
ALLOWED = {"check_edits"}


class FactoryDevices(TorchFunctionMode):
    """Records realedit code that creates a tensor without saying where (a CPU tensor meeting a
    GPU model). Draws from a seeded CPU ``generator=`` are deliberate (the same samples on every
    device) and moved right after, so they pass."""

    def __init__(self):
        super().__init__()
        self.offenders = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and "device" not in kwargs and "generator" not in kwargs:
            for frame in inspect.stack()[1:]:
                if "/site-packages/torch/" in frame.filename.replace("\\", "/"):
                    continue  # torch's own helpers: look at who called them
                if frame.filename.startswith(PACKAGE) and frame.function not in ALLOWED:
                    self.offenders.add(f"{Path(frame.filename).name}:{frame.lineno} {frame.function}")
                break
        return func(*args, **kwargs)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    p = tmp_path_factory.mktemp("photos") / "astronaut.jpg"
    Image.fromarray(skimage_data.astronaut()).save(p, quality=95)
    return p


@pytest.mark.slow
@pytest.mark.parametrize("inverter", ["optimize", "hybrid", "pti"])
def test_inversion_and_edit_create_every_tensor_on_the_model_device(inverter, photo, tmp_path):
    from realedit.invert.encoder import Encoder, EncoderConfig

    path = make_tiny_model(tmp_path)
    G = __import__("realedit.models", fromlist=["load"]).load(str(path))
    enc = Encoder(EncoderConfig.for_generator(G, 8, 16)) if inverter in ("hybrid", "pti") else None
    if enc is not None:
        enc.set_generator_stats(G)
    editor = Editor.from_pretrained(str(path), inverter=inverter, steps=6, encoder=enc,
                                    device="cpu", loss="mse")
    prepared = editor.prepare(photo)
    with FactoryDevices() as mode:
        inverted = editor.invert_prepared([prepared, prepared], batch=2)
        editor.apply(inverted[0], {"age": 0.1})
    assert mode.offenders == set()
    assert inverted[0].faces[0].latent.device == editor.device


def test_the_check_catches_a_tensor_made_without_a_device():
    ns = {"torch": torch}
    code = "def sloppy(n):\n    return torch.zeros(n) + torch.ones(n, device='cpu')\n"
    exec(compile(code, PACKAGE + "/fake.py", "exec"), ns)  # as if it were realedit code
    with FactoryDevices() as mode:
        ns["sloppy"](3)
    assert mode.offenders == {"fake.py:2 sloppy"}
