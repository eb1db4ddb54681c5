"""Optimisation-based inversion on tiny generators with known latents."""
from __future__ import annotations

import math

import pytest
import torch

from realedit import invert
from realedit.errors import UsageError
from realedit.invert.base import noise_buffers, synthesize
from realedit.invert.optimize import lr_at, noise_regularizer, phases
from realedit.models.pggan import PGGANGenerator
from realedit.models.stylegan2 import StyleGAN2Generator


def tiny_g():
    torch.manual_seed(0)
    G = StyleGAN2Generator(resolution=32, z_dim=32, w_dim=32, channel_base=32 * 32,
                           channel_max=32, mapping_layers=2).eval()
    with torch.no_grad():
        for m in G.modules():  # non-zero noise strengths, so noise inputs matter
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(0.1)
        G.mapping.w_avg.copy_(G.mapping(torch.randn(2000, 32))[:, 0].mean(0))
    return G


@pytest.fixture(scope="module")
def G():
    return tiny_g()


@pytest.fixture(scope="module")
def targets(G):
    with torch.no_grad():
        z = torch.randn(4, 32, generator=torch.Generator().manual_seed(1))
        return G.synthesis(G.mapping(z))


def mse(a, b):
    return (a - b).square().flatten(1).mean(1)


@pytest.mark.slow
def test_optimize_wp_recovers_generated_images(G, targets):
    calls = []
    inv = invert.get("optimize", G, loss="mse", steps=300)
    start = mse(G.synthesis(G.w_avg[None].repeat(4, 1)), targets)
    r = inv.invert(targets, "wp", callback=lambda s, n, l: calls.append((s, n, l)))
    err = mse(r.reconstruction, targets)
    assert (err <= 1e-3).all(), err
    assert (err < start / 100).all()
    assert r.latent.shape == (4, G.num_ws, 32) and r.space == "wp" and r.method == "optimize"
    assert r.history.shape == (r.steps, 4) and r.steps == len(calls) <= 300
    assert torch.allclose(r.history[-1], err, rtol=0.5)
    # progress: (step, total, batch-mean loss), strictly increasing steps
    assert [c[0] for c in calls] == sorted({c[0] for c in calls}) and calls[0][1] == 300
    assert r.seconds > 0
    # the latent reproduces the reconstruction
    assert torch.allclose(synthesize(G, r.latent, "wp"), r.reconstruction, atol=1e-5)
    assert all(p.requires_grad for p in G.parameters())  # G left as found


@pytest.mark.slow
def test_w_and_z_spaces(G, targets):
    rw = invert.get("optimize", G, loss="mse", steps=150).invert(targets[:2], "w")
    assert rw.latent.shape == (2, 32)
    assert (mse(rw.reconstruction, targets[:2]) < 1e-3).all()
    rz = invert.get("optimize", G, loss="mse", steps=60, z_candidates=4).invert(targets[:2], "z")
    assert rz.latent.shape == (2, 32)
    assert torch.allclose(rz.latent.norm(dim=1), torch.full((2,), math.sqrt(32)), rtol=1e-4)
    assert (rz.history[-1] < rz.history[0] / 3).all()


def test_pggan_z_stays_on_the_sphere():
    torch.manual_seed(0)
    P = PGGANGenerator(resolution=16, z_dim=32, fmap_base=64, fmap_max=32).eval()
    with torch.no_grad():
        tgt = P.synthesis(P.mapping(torch.randn(2, 32, generator=torch.Generator().manual_seed(5))))
    r = invert.get("optimize", P, loss="mse", steps=80, lr=0.05).invert(tgt)
    assert r.space == "z" and r.latent.shape == (2, 32)
    assert torch.allclose(r.latent.norm(dim=1), torch.full((2,), math.sqrt(32)), rtol=1e-4)
    assert (r.history[-1] < r.history[0] / 2).all()
    with pytest.raises(UsageError, match="space 'wp'"):
        invert.get("optimize", P, loss="mse").invert(tgt, "wp")
    with pytest.raises(UsageError, match="skip generator"):
        invert.get("optimize", P, loss="mse", coarse=[(8, 0.5)]).invert(tgt)


def test_noise_optimisation(G, targets):
    r = invert.get("optimize", G, loss="mse", steps=40, optimize_noise=True).invert(targets[:2], "w")
    assert r.noise is not None and set(r.noise) == set(noise_buffers(G))
    for m in r.noise.values():  # per-sample maps, kept normalised
        assert m.shape[0] == 2 and m.shape[1] == 1
        assert torch.allclose(m.mean((1, 2, 3)), torch.zeros(2), atol=1e-4)
        assert torch.allclose(m.std((1, 2, 3)), torch.ones(2), atol=1e-3)
    # the returned maps reproduce the reconstruction; G's own buffers are untouched
    assert torch.allclose(synthesize(G, r.latent, "w", noise=r.noise), r.reconstruction, atol=1e-5)
    assert not torch.allclose(synthesize(G, r.latent, "w"), r.reconstruction, atol=1e-4)
    assert all(not b.requires_grad for b in noise_buffers(G).values())


def test_noise_regularizer_penalises_structure():
    g = torch.Generator().manual_seed(0)
    white = torch.randn(3, 1, 32, 32, generator=g)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(3, 1, 34, 34, generator=g), 3, 1)
    smooth = (smooth - smooth.mean()) / smooth.std()
    rw, rs = noise_regularizer([white]), noise_regularizer([smooth])
    assert rw.shape == (3,) and (rs > 20 * rw).all()


def test_lr_schedule_and_phases(G):
    assert lr_at(0.0, 0.05, 0.25) == 0.0
    assert lr_at(0.5, 0.05, 0.25) == pytest.approx(1.0)
    assert lr_at(0.875, 0.05, 0.25) == pytest.approx(0.5)
    assert lr_at(0.999, 0.05, 0.25) < 1e-3
    assert phases(G, 100, [(8, 0.3), (16, 0.4)]) == [(8, 0), (16, 30), (32, 70)]
    assert phases(G, 100, "auto") == [(32, 0)]  # small models: every step at full size
    big = StyleGAN2Generator(resolution=512, z_dim=8, w_dim=8, channel_base=512 * 4,
                             channel_max=4, mapping_layers=1)
    assert phases(big, 100, "auto") == [(128, 0), (256, 50), (512, 80)]
    assert phases(PGGANGenerator(resolution=512, z_dim=8, fmap_base=2048, fmap_max=4), 100, "auto") == [(512, 0)]
    with pytest.raises(UsageError):
        phases(G, 100, [(16, 1.0)])
    with pytest.raises(UsageError):
        phases(G, 100, [(12, 0.5)])


def test_coarse_to_fine_runs_low_res_then_full(G, targets):
    r = invert.get("optimize", G, loss="mse", steps=200, coarse=[(16, 0.6)],
                   stall_steps=-1).invert(targets[:2], "wp")
    res = r.extra["step_resolution"]
    assert res[:120] == [16] * 120 and res[120:] == [32] * 80
    assert r.reconstruction.shape[-1] == 32
    start = mse(G.synthesis(G.w_avg[None].repeat(2, 1)), targets[:2])
    assert (mse(r.reconstruction, targets[:2]) < start / 50).all()  # whether it pays: bench/invert.py


def test_early_stop_when_the_loss_stalls(G):
    with torch.no_grad():
        easy = G.synthesis(G.w_avg[None] + 0.01)  # a code next to the start: converges at once
    r = invert.get("optimize", G, loss="mse", steps=400, stall_steps=20).invert(easy, "w")
    assert r.steps < 400
    assert float(r.history[-1]) < 1e-6
    full = invert.get("optimize", G, loss="mse", steps=60, stall_steps=-1).invert(easy, "w")
    assert full.steps == 60


def test_batch_items_are_independent(G, targets):
    opts = dict(loss="mse", steps=30, stall_steps=-1)
    both = invert.get("optimize", G, **opts).invert(targets[:2], "wp")
    one = invert.get("optimize", G, **opts).invert(targets[1:2], "wp")
    assert torch.allclose(both.latent[1], one.latent[0], atol=1e-4)


def test_bad_requests(G, targets):
    with pytest.raises(UsageError, match="unknown inversion method"):
        invert.get("magic", G)
    with pytest.raises(UsageError, match="unknown option"):
        invert.get("optimize", G, loss="mse", stepz=3)
    inv = invert.get("optimize", G, loss="mse", steps=2)
    with pytest.raises(UsageError, match=r"\(N, 3, H, W\)"):
        inv.invert(targets[0])
    with pytest.raises(UsageError, match="square"):
        inv.invert(targets[:, :, :, :16])
    with pytest.raises(UsageError, match="space"):
        inv.invert(targets, "s")
    with pytest.raises(UsageError, match="encoder"):
        invert.get("encoder", G)
    # a differently sized aligned face is resized to the generator's resolution
    big = torch.nn.functional.interpolate(targets[:1], size=64, mode="bilinear")
    assert inv.invert(big).reconstruction.shape[-1] == 32


def test_stylegan1_wp_with_noise_maps():
    from realedit.models.stylegan import StyleGANGenerator
    torch.manual_seed(0)
    S = StyleGANGenerator(resolution=16, z_dim=32, w_dim=32, mapping_layers=2, fmap_base=64,
                          fmap_max=32).eval()
    with torch.no_grad():
        S.mapping.w_avg.copy_(S.mapping(torch.randn(1000, 32))[:, 0].mean(0))
        for m in S.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(0.1)
        tgt = S.synthesis(S.mapping(torch.randn(2, 32, generator=torch.Generator().manual_seed(2))))
    r = invert.get("optimize", S, loss="mse", steps=60, optimize_noise=True).invert(tgt, "wp")
    assert r.noise and (r.history[-1] < r.history[0] / 5).all()
    assert torch.allclose(synthesize(S, r.latent, "wp", noise=r.noise), r.reconstruction, atol=1e-5)


@pytest.mark.slow
def test_batch_with_per_sample_early_stop_equals_one_at_a_time(G, targets):
    # One face converges at once (a code next to the start), the others do not: each must stop
    # on its own loss, not the batch mean, and get the result it would get alone.
    with torch.no_grad():
        easy = G.synthesis(G.w_avg[None, None].repeat(1, G.num_ws, 1) + 0.01)
    batch = torch.cat([targets[:1], easy, targets[1:2]])
    opts = dict(loss="mse", steps=120, stall_steps=10)
    both = invert.get("optimize", G, **opts).invert(batch, "wp")
    singles = [invert.get("optimize", G, **opts).invert(batch[i:i + 1], "wp") for i in range(3)]
    # the easy face skipped steps that the hard ones ran: schedules really differed
    assert singles[1].steps < singles[0].steps and singles[1].steps < singles[2].steps
    assert both.extra["sample_steps"] == [s.steps for s in singles]
    assert both.steps == max(s.steps for s in singles)
    # Batched convolutions sum in another order; over 120 Adam steps that drifts ~1e-3.
    for i, one in enumerate(singles):
        assert torch.allclose(both.latent[i], one.latent[0], atol=5e-3), i
        assert torch.allclose(both.final_loss[i], one.final_loss[0], rtol=2e-2, atol=1e-7), i


def test_sync_every_reads_losses_less_often(G, targets):
    calls = []
    r = invert.get("optimize", G, loss="mse", steps=40, stall_steps=-1, sync_every=10).invert(
        targets[:2], "wp", callback=lambda s, n, l: calls.append(s))
    assert calls == [10, 20, 30, 40] and r.steps == 40
