"""Named, pluggable image losses: specs, combinations, the discriminator-feature loss."""
from __future__ import annotations

import pytest
import torch

from realedit.errors import UsageError
from realedit.invert.losses import (CombinedLoss, DiscFeatureLoss, build_loss, parse_spec)
from realedit.invert.lpips import LPIPS
from realedit.models.stylegan2 import StyleGAN2Discriminator


@pytest.fixture(scope="module")
def D():
    torch.manual_seed(0)
    return StyleGAN2Discriminator(resolution=32, channel_base=32 * 32, channel_max=32).eval()


def imgs(seed, n=2, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_parse_spec():
    assert parse_spec("lpips-vgg+mse") == {"lpips-vgg": 1.0, "mse": 1.0}
    assert parse_spec("0.5*mse + 2*l1") == {"mse": 0.5, "l1": 2.0}
    assert parse_spec({"disc": 0.1, "mse": 1}) == {"disc": 0.1, "mse": 1.0}
    for bad in ("foo", "mse+", "0.5*", "lpips+mse", ""):
        with pytest.raises(UsageError):
            parse_spec(bad)


def test_simple_losses_are_per_sample():
    x, y = imgs(0), imgs(1)
    mse, l1 = build_loss("mse"), build_loss("l1")
    assert mse(x, y).shape == (2,)
    assert torch.allclose(mse(x, y), ((x - y) ** 2).flatten(1).mean(1))
    assert torch.allclose(l1(x, y), (x - y).abs().flatten(1).mean(1))
    both = build_loss("0.5*mse+2*l1")
    assert torch.allclose(both(x, y), 0.5 * mse(x, y) + 2 * l1(x, y))
    assert set(both.last_terms) == {"mse", "l1"}
    # one sample's loss does not depend on the others in the batch
    assert torch.allclose(mse(x[:1], y[:1]), mse(x, y)[:1])


def test_disc_feature_loss_definition(D):
    x, y = imgs(2), imgs(3)
    loss = build_loss("disc", discriminator=D)
    got = loss(x, y)
    fx, fy = D.features(x), D.features(y)
    assert len(fx) == 3  # blocks 32, 16, 8
    want = []
    for a, b in zip(fx, fy):
        na = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        nb = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        want.append(((na - nb) ** 2).sum(1).mean((1, 2)))
    assert torch.allclose(got, torch.stack(want).mean(0), rtol=1e-5)
    assert torch.allclose(loss(x, x), torch.zeros(2), atol=1e-6)
    assert (got > 0).all() and (got <= 4).all()  # unit vectors: squared distance at most 4
    # images at another size are resized to D's resolution; gradients reach the input
    xg = imgs(4, size=64).requires_grad_(True)
    loss(xg, imgs(5, size=64)).sum().backward()
    assert xg.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in D.parameters())


def test_auto_prefers_the_discriminator(D):
    loss = build_loss("auto", discriminator=D)
    assert isinstance(loss, CombinedLoss) and set(loss.names) == {"disc", "mse"}
    assert isinstance(loss.terms["disc"], DiscFeatureLoss)


def test_disc_without_discriminator_is_a_usage_error():
    with pytest.raises(UsageError, match="discriminator"):
        build_loss("disc+mse")


def test_lpips_term_uses_the_factory_and_caps_resolution():
    seen = []

    def factory(net):
        seen.append(net)
        return LPIPS.random(net, seed=1)

    loss = build_loss("lpips-alex+mse", lpips_factory=factory, lpips_max_resolution=64)
    assert seen == ["alex"]
    x, y = imgs(6, size=128), imgs(7, size=128)
    small = torch.nn.functional.interpolate
    want = LPIPS.random("alex", seed=1)(small(x, size=64, mode="area"), small(y, size=64, mode="area"))
    total = loss(x, y)
    assert torch.allclose(loss.last_terms["lpips-alex"], want, rtol=1e-4)
    assert torch.allclose(total, want + ((x - y) ** 2).flatten(1).mean(1), rtol=1e-4)


def test_module_passes_through():
    m = torch.nn.MSELoss()
    assert build_loss(m) is m
