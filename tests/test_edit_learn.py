"""Learning a direction through the generator and differentiable scorers: on a linear toy whose
score gradients are known, it must find a direction that moves the target while the kept
score stays within tolerance, starting from one that drifts it."""
import numpy as np
import pytest
import torch

from realedit.research.learn import PhotoCodes, edited_crops, learn_direction, measure
from realedit.errors import EditError

D, L = 8, 3


class LinearToy:
    """(N, L, D) codes -> (N, 3, 4, 4) images, linear in the mean code of layers 0-1 only
    (layer 2 does nothing, so learning there cannot help)."""
    num_ws = L

    def __init__(self):
        self.P = torch.randn(D, 48, generator=torch.Generator().manual_seed(0)) * 0.1

    def synthesis(self, ws, noise="const"):
        return (ws[:, :2].mean(1) @ self.P).view(-1, 3, 4, 4)


def _data(G, n, seed):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randn(n, L, D, generator=g)
    with torch.no_grad():
        before = G.synthesis(codes)
    return PhotoCodes(torch.rand(n, 3, 8, 8, generator=g) * 2 - 1, torch.ones(n, 1, 8, 8), codes, before)


def _scorers():
    g = torch.Generator().manual_seed(1)
    T, K = torch.randn(3, 8, 8, generator=g), torch.randn(3, 8, 8, generator=g)

    def score_fn(y):
        return {"t": (y * T).sum((1, 2, 3)), "k": (y * K).sum((1, 2, 3))}
    return score_fn


def _gradient(G, score_fn, name):
    """d score / d (per-layer step on layer 0) at zero: exact for the linear toy."""
    data = _data(G, 1, 5)
    step = torch.zeros(1, L, D, requires_grad=True)
    score_fn(edited_crops(G, data, step))[name].sum().backward()
    return step.grad[0, 0].numpy().astype(np.float64)


def test_learns_to_keep_what_the_init_drifts():
    G, score_fn = LinearToy(), _scorers()
    gt, gk = _gradient(G, score_fn, "t"), _gradient(G, score_fn, "k")
    init = gt / np.linalg.norm(gt) + gk / np.linalg.norm(gk)  # moves t, but drags k along
    train, val = _data(G, 64, 2), _data(G, 32, 3)
    tol = {"k": 0.2 * abs(init @ gk) / np.linalg.norm(init)}  # init drifts k 30x past tol at 3
    before = measure(G, val, np.tile(init / np.linalg.norm(init), (L, 1)), (0, 1), score_fn, "t", tol)
    assert before["success"] == 0.0
    r = learn_direction(G, train, val, score_fn, "t", tol, init, layers=(0, 1), margin=0.1,
                        steps=200, lr=0.02, eval_every=20)
    assert r.init_success == 0.0 and r.best_success == 1.0 and r.best_step > 0
    assert np.allclose(np.linalg.norm(r.vector, axis=1), 1.0)
    # outside the window the row is the normalised init, never updated (the norm itself may
    # round differently from ours: BLAS picks its summation order by thread count and CPU)
    np.testing.assert_allclose(r.vector[2], init / np.linalg.norm(init), rtol=0, atol=1e-15)
    for row in r.vector[:2]:
        # gk is the gradient for layer 0 alone, half the effect of a step on layers 0-1
        assert abs(row @ gk) * 2 * 3 < tol["k"]
        assert row @ gt > 0
    after = measure(G, val, r.vector, (0, 1), score_fn, "t", tol, amount=3.0)
    assert after["success"] == 1.0 and after["target_change"] > 0
    assert [h["step"] for h in r.history][:2] == [0, 20]


def test_a_window_without_effect_cannot_learn():
    # Layer 2 does not reach the image: the target never moves, so nothing beats the init.
    G, score_fn = LinearToy(), _scorers()
    train, val = _data(G, 16, 2), _data(G, 8, 3)
    init = np.ones(D)
    r = learn_direction(G, train, val, score_fn, "t", {"k": 1.0}, init, layers=(2,), steps=10,
                        eval_every=5)
    assert r.best_step == 0 and r.best_success == 0.0
    assert np.allclose(r.vector, init / np.linalg.norm(init))


def test_bad_arguments():
    G, score_fn = LinearToy(), _scorers()
    d = _data(G, 4, 2)
    with pytest.raises(EditError, match="keep"):
        learn_direction(G, d, d, score_fn, "t", {"t": 1.0}, np.ones(D), steps=1)
    with pytest.raises(EditError, match="layers"):
        learn_direction(G, d, d, score_fn, "t", {}, np.ones(D), layers=(3,), steps=1)
    with pytest.raises(EditError, match="init"):
        learn_direction(G, d, d, score_fn, "t", {}, np.ones((2, D)), steps=1)
    with pytest.raises(EditError, match="W\\+"):
        PhotoCodes(d.crops, d.masks, d.codes[:, 0], d.before)
    with pytest.raises(EditError, match="masks"):
        PhotoCodes(d.crops, d.masks[:2], d.codes, d.before)
