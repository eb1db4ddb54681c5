"""Encoder and hybrid inversion on a tiny StyleGAN2, the encoder file format, resumable
training, and the `realedit train-encoder` command."""
from __future__ import annotations

import math
import os
import signal

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from realedit import invert
from realedit.errors import FormatError, OutputError, UsageError
from realedit.invert.base import estimate_w_stats
from realedit.invert.encoder import Encoder, load_encoder, read_encoder_file
from realedit.training.encoder import EncoderTrainOptions, train_encoder
from realedit.models.pggan import PGGANGenerator
from realedit.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator


def tiny_g(resolution=32):
    torch.manual_seed(0)
    G = StyleGAN2Generator(resolution=resolution, z_dim=32, w_dim=32, channel_base=32 * resolution,
                           channel_max=32, mapping_layers=2).eval()
    with torch.no_grad():
        for m in G.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(0.1)
        G.mapping.w_avg.copy_(G.mapping(torch.randn(2000, 32))[:, 0].mean(0))
    return G


def mse(a, b):
    return (a - b).square().flatten(1).mean(1)


@pytest.fixture(scope="module")
def G():
    return tiny_g()


@pytest.fixture(scope="module")
def targets(G):
    with torch.no_grad():
        z = torch.randn(4, 32, generator=torch.Generator().manual_seed(1))
        return G.synthesis(G.mapping(z))


@pytest.fixture(scope="module")
def E(G, tmp_path_factory):
    """Trained briefly on generator samples (code + image loss)."""
    out = tmp_path_factory.mktemp("enc") / "tiny.encoder.pt"
    opts = EncoderTrainOptions(batch=8, lr=1e-3, channels=16, max_channels=64, checkpoint_every=0)
    return train_encoder(G, out=out, steps=300, loss="mse", options=opts)


@pytest.mark.slow
def test_encoder_beats_a_random_start(G, E, targets):
    r = invert.get("encoder", G, encoder=E).invert(targets, "wp")
    assert r.method == "encoder" and r.steps == 0 and r.latent.shape == (4, G.num_ws, 32)
    with torch.no_grad():
        at_avg = mse(G.synthesis(G.w_avg[None].repeat(4, 1)), targets)
        at_random = mse(G.synthesis(G.mapping(torch.randn(4, 32, generator=torch.Generator().manual_seed(9)))), targets)
    err = mse(r.reconstruction, targets)
    assert err.mean() < 0.5 * at_avg.mean() and err.mean() < 0.25 * at_random.mean()
    assert torch.allclose(r.history[0], err)
    rw = invert.get("encoder", G, encoder=E).invert(targets, "w")
    assert rw.latent.shape == (4, 32) and torch.allclose(rw.latent, r.latent.mean(1))
    with pytest.raises(UsageError, match="z"):
        invert.get("encoder", G, encoder=E).invert(targets, "z")


@pytest.mark.slow
def test_hybrid_beats_encoder_and_reaches_optimize_in_fewer_steps(G, E, targets):
    enc = mse(invert.get("encoder", G, encoder=E).invert(targets, "wp").reconstruction, targets)
    res = {}
    for n in (15, 30):
        h = invert.get("hybrid", G, encoder=E, loss="mse", steps=n, stall_steps=-1).invert(targets, "wp")
        o = invert.get("optimize", G, loss="mse", steps=n, stall_steps=-1).invert(targets, "wp")
        res[n] = (mse(h.reconstruction, targets).mean(), mse(o.reconstruction, targets).mean())
        assert h.method == "hybrid" and h.steps == n
    assert res[15][0] < 0.25 * enc.mean()          # refinement improves on the encoder
    for n, (h, o) in res.items():                   # same budget: hybrid at least 2x better
        assert h < 0.5 * o, (n, h, o)
    assert res[15][0] < res[30][1]                  # half the steps, optimize's quality


@pytest.mark.slow
def test_hybrid_codes_edit_like_encoder_codes(G, E, targets):
    enc = invert.get("encoder", G, encoder=E).invert(targets, "wp").latent
    hyb = invert.get("hybrid", G, encoder=E, loss="mse", steps=60).invert(targets, "wp").latent
    opt = invert.get("optimize", G, loss="mse", steps=60).invert(targets, "wp").latent
    _, std = estimate_w_stats(G)
    d = torch.randn(32, generator=torch.Generator().manual_seed(3))
    d = d / d.norm() * std * math.sqrt(32)           # one "standard deviation" of w
    alphas = torch.linspace(-1.5, 1.5, 13)

    def edit(ws):
        with torch.no_grad():
            imgs = torch.stack([G.synthesis(ws + a * d) for a in alphas])
        first = (imgs[1:] - imgs[:-1]).flatten(2).norm(dim=2)
        second = (imgs[2:] - 2 * imgs[1:-1] + imgs[:-2]).flatten(2).norm(dim=2)
        change = (imgs[-1] - imgs[0]).flatten(1).norm(dim=1).mean()
        return float(change), float((second.sum(0) / first.sum(0)).mean())

    (ce, re_), (ch, rh) = edit(enc), edit(hyb)
    assert 0.8 < ch / ce < 1.25                      # the edit moves the image as much
    assert rh < 1.25 * re_                           # and as smoothly
    # the domain regulariser keeps hybrid codes where the encoder maps their own images
    def off_domain(ws):
        with torch.no_grad():
            return float(((E(G.synthesis(ws)) - ws).square().mean() / E.w_std ** 2))
    assert off_domain(hyb) < 0.75 * off_domain(opt)


def test_encoder_file_roundtrip(G, tmp_path):
    opts = EncoderTrainOptions(batch=2, channels=8, max_channels=16, checkpoint_every=0)
    out = tmp_path / "e.pt"
    E1 = train_encoder(G, out=out, steps=2, loss="mse", options=opts)
    obj = torch.load(out, weights_only=True)
    assert obj["format"] == "realedit-encoder" and obj["step"] == 2
    assert obj["config"]["num_ws"] == G.num_ws and obj["config"]["output"] == "wp"
    E2 = load_encoder(out)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(E1(x), E2(x))
    junk = tmp_path / "junk.pt"
    torch.save({"something": torch.zeros(1)}, junk)
    with pytest.raises(FormatError, match="not a realedit encoder"):
        load_encoder(junk)
    other = tiny_g(resolution=16)  # fewer layers: incompatible
    with pytest.raises(UsageError, match="encoder was trained"):
        invert.get("encoder", other, encoder=out)


def test_untrained_encoder_answers_w_avg(G):
    from realedit.invert.encoder import EncoderConfig
    E = Encoder(EncoderConfig.for_generator(G, channels=8, max_channels=16))
    E.set_generator_stats(G)
    with torch.no_grad():
        ws = E(torch.rand(2, 3, 32, 32))
    assert torch.allclose(ws, G.w_avg.expand(2, G.num_ws, -1))


def test_resume_continues_exactly(G, tmp_path):
    opts = EncoderTrainOptions(batch=2, channels=8, max_channels=16, checkpoint_every=0)
    straight = train_encoder(G, out=tmp_path / "a.pt", steps=4, loss="mse", options=opts)
    train_encoder(G, out=tmp_path / "b.pt", steps=2, loss="mse", options=opts)
    assert read_encoder_file(tmp_path / "b.pt")["step"] == 2
    resumed = train_encoder(G, out=tmp_path / "b.pt", steps=4, loss="mse", options=opts, resume=True)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    # a fresh run never replaces an existing file
    with pytest.raises(OutputError, match="--resume"):
        train_encoder(G, out=tmp_path / "b.pt", steps=1, loss="mse", options=opts)
    foreign = tmp_path / "photo.png"
    foreign.write_bytes(b"\x89PNG not really")
    with pytest.raises(OutputError, match="refusing"):
        train_encoder(G, out=foreign, steps=1, loss="mse", options=opts)
    assert foreign.read_bytes() == b"\x89PNG not really"


def test_sigterm_checkpoints_the_step_reached(G, tmp_path):
    # Stopping a long training run (kill, session end) keeps every finished step, and the
    # file records where it stopped, so --resume continues from there.
    opts = EncoderTrainOptions(batch=2, channels=8, max_channels=16, checkpoint_every=0)
    before = signal.getsignal(signal.SIGTERM)

    def stop_at_3(step, total, losses):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
    train_encoder(G, out=tmp_path / "e.pt", steps=50, loss="mse", options=opts, callback=stop_at_3)
    assert read_encoder_file(tmp_path / "e.pt")["step"] == 3
    assert signal.getsignal(signal.SIGTERM) == before  # handler restored
    train_encoder(G, out=tmp_path / "e.pt", steps=5, loss="mse", options=opts, resume=True)
    assert read_encoder_file(tmp_path / "e.pt")["step"] == 5


def test_pggan_encoder_predicts_z_on_the_sphere(tmp_path):
    torch.manual_seed(0)
    P = PGGANGenerator(resolution=16, z_dim=32, fmap_base=64, fmap_max=32).eval()
    opts = EncoderTrainOptions(batch=2, channels=8, max_channels=16, checkpoint_every=0)
    E = train_encoder(P, out=tmp_path / "p.pt", steps=2, loss="mse", options=opts)
    assert E.config.output == "z"
    r = invert.get("encoder", P, encoder=E).invert(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert r.space == "z" and r.latent.shape == (2, 32)
    assert torch.allclose(r.latent.norm(dim=1), torch.full((2,), math.sqrt(32)), rtol=1e-4)
    h = invert.get("hybrid", P, encoder=E, loss="mse", steps=4).invert(torch.rand(1, 3, 16, 16) * 2 - 1)
    assert torch.allclose(h.latent.norm(dim=1), torch.full((1,), math.sqrt(32)), rtol=1e-4)


def test_train_encoder_command(tmp_path, monkeypatch):
    from PIL import Image

    from realedit import models
    from realedit.commands.train import cli
    G = tiny_g(resolution=16)
    torch.manual_seed(1)
    D = StyleGAN2Discriminator(resolution=16, channel_base=16 * 16, channel_max=16)
    model = models.save(G, tmp_path / "tiny.pt", discriminator=D)
    data = tmp_path / "faces"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):  # non-square photos are centre-cropped
        Image.fromarray(rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(data / f"{i}.png")
    runner = CliRunner()
    args = ["train-encoder", "--model", str(model), "--data", str(data), "--batch", "2",
            "--checkpoint-every", "2", "--device", "cpu"]
    res = runner.invoke(cli, args + ["--steps", "3"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "tiny.encoder.pt"        # default: next to the generator
    obj = read_encoder_file(out)
    assert obj["step"] == 3 and obj["train"]["loss"] == "disc+mse" and obj["train"]["real_fraction"] == 0.5
    monkeypatch.setenv("REALEDIT_HOME", str(tmp_path / "home"))
    res = runner.invoke(cli, args + ["--steps", "5", "--resume", "--register", "tiny-encoder"])
    assert res.exit_code == 0, res.output
    assert read_encoder_file(out)["step"] == 5
    from realedit import weights
    e = weights.entry("tiny-encoder")           # registered, usable by name
    assert e.role == "encoder" and e.kind == "realedit"
    assert load_encoder("tiny-encoder").config.num_ws == G.num_ws
    res = runner.invoke(cli, args + ["--steps", "5"])          # exists, no --resume
    assert res.exit_code != 0 and "--resume" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["train-encoder", "--model", str(tmp_path / "none.pt"), "--steps", "1"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert len([l for l in res.output.splitlines() if l.startswith("Error")]) == 1
    res = runner.invoke(cli, ["train-encoder", "--model", str(model), "--steps", "1",
                              "--loss", "mse", "--data", str(tmp_path / "tiny.pt"), "-o", str(tmp_path / "x.pt")])
    assert res.exit_code != 0 and "aligned photos" in res.output
