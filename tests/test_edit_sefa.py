"""SeFa closed-form directions on tiny generators."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from realedit.errors import UsageError
from realedit.edit import apply_edits
from realedit.research import sefa
from realedit.research.sefa import sefa_matrix, stylegan2_affines
from realedit.models.pggan import PGGANGenerator
from realedit.models.stylegan2 import StyleGAN2Generator


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return StyleGAN2Generator(resolution=32, z_dim=32, w_dim=32, channel_base=32 * 32,
                              channel_max=32, mapping_layers=2).eval()


def test_affines_follow_ws_order(G):
    aff = stylegan2_affines(G)
    assert len(aff) == G.num_ws == 8
    syn = G.synthesis
    assert aff[0][1] is not None and torch.equal(aff[0][1], syn.b4.conv1.affine.weight)
    assert torch.equal(aff[1][1], syn.b8.conv0.affine.weight)
    assert torch.equal(aff[2][1], syn.b8.conv1.affine.weight)
    assert torch.equal(aff[-1][1], syn.b32.torgb.affine.weight)


def test_sefa_eigenvectors_are_the_closed_form(G):
    bank = sefa(G, num=5, model="tiny")
    dirs = [bank.get(f"sefa{i}") for i in range(5)]
    vals = [d.stats["eigenvalue"] for d in dirs]
    assert vals == sorted(vals, reverse=True) and vals[0] > vals[-1] > 0
    # independent reference: SVD of the stacked, row-normalised conv affines
    A = torch.cat([m.affine.weight.detach() for name, m in G.synthesis.named_modules()
                   if name.rsplit(".", 1)[-1] in ("conv0", "conv1")]).double()
    A = A / A.norm(dim=1, keepdim=True)
    _, S, Vh = torch.linalg.svd(A, full_matrices=False)
    for i, d in enumerate(dirs):
        assert d.space == "w" and d.layers is None and d.source == "sefa"
        assert abs(abs(d.vector @ Vh[i].numpy()) - 1) < 1e-8
        assert abs(d.stats["eigenvalue"] - S[i].item() ** 2) < 1e-6 * S[0].item() ** 2
    M = np.stack([d.vector for d in dirs])
    np.testing.assert_allclose(M @ M.T, np.eye(5), atol=1e-10)
    # a deterministic sign, so saved banks and reruns agree
    again = sefa(G, num=5, model="tiny")
    for i in range(5):
        np.testing.assert_array_equal(again.get(f"sefa{i}").vector, dirs[i].vector)


def test_sefa_on_first_layers_edits_only_those_layers(G):
    bank = sefa(G, layers="0-1", num=3, model="tiny")
    d = bank.get("sefa0")
    assert d.layers == (0, 1)
    A, layers, _ = sefa_matrix(G, "0-1")
    assert A.shape[0] == G.synthesis.b4.conv1.affine.weight.shape[0] + G.synthesis.b8.conv0.affine.weight.shape[0]
    with torch.no_grad():
        ws = G.mapping(torch.randn(2, 32))
    out = apply_edits(ws, "wp", {"sefa0": 4.0}, bank=bank, model="tiny")
    changed = (out - ws).abs().amax(dim=(0, 2)) > 0
    assert changed.tolist() == [True, True] + [False] * 6
    # moving along the top direction changes the first layers' styles more than a random one
    w = ws[:1, 0].detach()
    styles = lambda v: G.synthesis.b4.conv1.affine(v.float()).detach()
    top = (styles(w + torch.tensor(d.vector).float()) - styles(w)).norm()
    rnd = torch.randn(32)
    rnd = rnd / rnd.norm()
    assert top > (styles(w + rnd) - styles(w)).norm()
    with pytest.raises(UsageError, match="within 0-7"):
        sefa(G, layers="0-9")


def test_sefa_pggan_first_projection():
    torch.manual_seed(1)
    P = PGGANGenerator(resolution=8, z_dim=16, fmap_base=64, fmap_max=16).eval()
    bank = sefa(P, num=4, model="pg")
    d = bank.get("sefa0")
    assert d.space == "z"
    W = P.layer0.weight.detach().double()            # (out, z_dim)
    W = W / W.norm(dim=1, keepdim=True)
    top = torch.linalg.eigh(W.T @ W).eigenvectors[:, -1].numpy()
    assert abs(abs(d.vector @ top) - 1) < 1e-8
    z = np.zeros((1, 16))
    np.testing.assert_allclose(apply_edits(z, "z", {"sefa0": 2.0}, bank=bank)[0], 2 * d.vector)
