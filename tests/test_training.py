"""The small-GAN trainer: augmentations, one step, checkpoint/resume, and the CLI on tiny data."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from realedit.cli import cli
from realedit.training.gan import (GanConfig, diff_augment, load_checkpoint, make_forwards, new_state,
                                   save_checkpoint, train, train_step)


def tiny_cfg(**kw):
    base = dict(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channels=8, channel_base=64,
                batch=4, r1_interval=2, checkpoint_every=2, sample_every=1000)
    base.update(kw)
    return GanConfig(**base)


def test_translation_shifts_content_and_cutout_zeroes_a_patch():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16) + 1  # strictly positive, so zeros can only come from cutout/padding
    y = diff_augment(x, "translation")
    assert y.shape == x.shape
    assert not torch.equal(x, y)
    z = diff_augment(x, "cutout")
    frac_zero = (z == 0).float().mean().item()
    assert 0.15 < frac_zero < 0.35  # half-size square: a quarter of the pixels, minus clipping
    x.requires_grad_(True)
    diff_augment(x, "color,translation,cutout").sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        diff_augment(x, "rotate")


def test_one_step_moves_both_networks_and_ema():
    cfg = tiny_cfg()
    st = new_state(cfg, "cpu")
    g0 = [p.detach().clone() for p in st.G.parameters()]
    d0 = [p.detach().clone() for p in st.D.parameters()]
    e0 = [p.detach().clone() for p in st.G_ema.parameters()]
    G_fwd, D_fwd = make_forwards(st, cfg)
    out = train_step(st, cfg, torch.rand(4, 3, 16, 16) * 2 - 1, G_fwd, D_fwd)
    assert np.isfinite(float(out["loss_G"])) and np.isfinite(float(out["loss_D"])) and "r1" in out
    assert any(not torch.equal(a, b) for a, b in zip(g0, st.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, st.D.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(e0, st.G_ema.parameters()))
    assert st.nimg == 4 and st.it == 1


def test_checkpoint_round_trip_is_exact(tmp_path):
    cfg = tiny_cfg()
    st = new_state(cfg, "cpu")
    G_fwd, D_fwd = make_forwards(st, cfg)
    for _ in range(2):
        train_step(st, cfg, torch.rand(4, 3, 16, 16) * 2 - 1, G_fwd, D_fwd)
    save_checkpoint(st, cfg, tmp_path / "c.pt")
    st2, cfg2 = load_checkpoint(tmp_path / "c.pt", "cpu")
    assert cfg2 == cfg and st2.nimg == st.nimg and st2.it == st.it
    for m, m2 in ((st.G, st2.G), (st.D, st2.D), (st.G_ema, st2.G_ema)):
        for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
            assert torch.equal(a, b), k
    assert st2.opt_G.state_dict()["state"][0]["exp_avg"].equal(st.opt_G.state_dict()["state"][0]["exp_avg"])


def test_train_resumes_and_stops_at_total(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "d.npy", data)
    run = tmp_path / "run"
    st = train(tmp_path / "d.npy", run, tiny_cfg(total_kimg=0.008), log=lambda m: None)
    assert st.nimg == 8
    st = train(tmp_path / "d.npy", run, tiny_cfg(total_kimg=0.016), log=lambda m: None)
    assert st.nimg == 16  # continued from 8, not restarted
    with pytest.raises(ValueError, match="architecture"):
        train(tmp_path / "d.npy", run, tiny_cfg(total_kimg=0.024, channels=16), log=lambda m: None)
    assert json.loads((run / "config.json").read_text())["total_kimg"] == 0.016


def test_train_gan_cli_on_tiny_data(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    np.save(tmp_path / "d.npy", data)
    res = CliRunner().invoke(cli, ["train-gan", "--data", str(tmp_path / "d.npy"), "--run", str(tmp_path / "r"),
                                   "--kimg", "0.004", "--channels", "8", "--batch", "4", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    st, cfg = load_checkpoint(tmp_path / "r" / "checkpoint.pt", "cpu")
    assert st.nimg == 4 and cfg.channels == 8
    res = CliRunner().invoke(cli, ["train-gan", "--data", str(tmp_path / "d.npy"), "--run", str(tmp_path / "r"),
                                   "--kimg", "0.008", "--channels", "16"])
    assert res.exit_code != 0 and "fresh" in res.output
    # The augmentation policy may change when a run resumes; a bad name is refused up front.
    res = CliRunner().invoke(cli, ["train-gan", "--data", str(tmp_path / "d.npy"), "--run", str(tmp_path / "r"),
                                   "--kimg", "0.008", "--augment", "translation,flip"])
    assert res.exit_code == 2 and "flip" in res.output
    assert load_checkpoint(tmp_path / "r" / "checkpoint.pt", "cpu")[0].nimg == 4
    res = CliRunner().invoke(cli, ["train-gan", "--data", str(tmp_path / "d.npy"), "--run", str(tmp_path / "r"),
                                   "--kimg", "0.008", "--augment", "translation"])
    assert res.exit_code == 0, res.output
    st, cfg = load_checkpoint(tmp_path / "r" / "checkpoint.pt", "cpu")
    assert st.nimg == 8 and cfg.augment == "translation" and cfg.channels == 8
    changes = [e for e in st.log if "change" in e]
    assert changes == [{"it": 1, "kimg": 0.004, "change": {"augment": ["color,translation,cutout", "translation"]}}]


def test_checkpoint_restores_the_random_stream(tmp_path):
    # Resume continues the random stream where it stopped; the GPU's stream is stored too (None
    # for a run on the CPU). (On CUDA, map_location used to turn the CPU state into a CUDA
    # tensor that set_rng_state refused; it is now moved back first.)
    cfg = tiny_cfg()
    st = new_state(cfg, "cpu")
    save_checkpoint(st, cfg, tmp_path / "c.pt")
    expected = torch.rand(5)
    ck = torch.load(tmp_path / "c.pt", weights_only=True)
    assert "cuda_rng" in ck and ck["cuda_rng"] is None
    torch.rand(7)  # move the stream on
    load_checkpoint(tmp_path / "c.pt", "cpu")
    assert torch.equal(torch.rand(5), expected)


def test_a_new_run_can_continue_a_released_model(tmp_path):
    """--init-from: the embedded model's own run is not shipped; training continues from the
    model file (its G as G and G_ema, its D), counting images from the model's total."""
    from realedit import models
    from realedit.training.gan import state_from_model

    cfg = tiny_cfg()
    src = new_state(cfg, "cpu")
    with torch.no_grad():
        for p in src.G_ema.parameters():
            p.add_(0.01 * torch.randn_like(p))  # not what a fresh init would give
    path = models.save(src.G_ema, tmp_path / "m.pt", discriminator=src.D, meta={"kimg": 0.004, "name": "m"})
    st, cfg2 = state_from_model(path, GanConfig(), "cpu")
    assert cfg2.channels == cfg.channels and cfg2.resolution == cfg.resolution
    for a, b in ((src.G_ema, st.G), (src.G_ema, st.G_ema), (src.D, st.D)):
        for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=k)
    assert st.nimg == 4 and st.log[0]["init_from"] == "m"

    data = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "d.npy", data)
    st = train(tmp_path / "d.npy", tmp_path / "run", tiny_cfg(total_kimg=0.008), log=lambda m: None,
               init_from=path)
    assert st.nimg == 8  # 4 from the model + 4 trained here
    # The run is an ordinary run now: it resumes from its own checkpoint, not the model.
    st = train(tmp_path / "d.npy", tmp_path / "run", tiny_cfg(total_kimg=0.012), log=lambda m: None,
               init_from=path)
    assert st.nimg == 12


def test_train_gan_init_from_bad_model_is_one_line(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    np.save(tmp_path / "d.npy", data)
    base = ["train-gan", "--data", str(tmp_path / "d.npy"), "--run", str(tmp_path / "r"), "--kimg", "0.004"]
    res = CliRunner().invoke(cli, base + ["--init-from", str(tmp_path / "missing.pt")])
    assert res.exit_code == 5 and "Traceback" not in res.output
    assert not (tmp_path / "r" / "checkpoint.pt").exists()
    res = CliRunner().invoke(cli, base + ["--init-from", "realedit-celeba64", "--channels", "8"])
    assert res.exit_code == 2 and "--channels" in res.output
    # --kimg is a total: asking for less than the model has seen would train nothing
    res = CliRunner().invoke(cli, base + ["--init-from", "realedit-celeba64"])
    assert res.exit_code == 2 and "kimg" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()  # no empty run folder left behind
