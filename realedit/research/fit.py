"""Fitting attribute directions the InterFaceGAN way.

sample z -> (map to w) -> synthesise in batches -> score -> keep the top and bottom
``ratio`` of the samples -> 70/30 train/validation split -> linear SVM -> unit normal.

The normal points toward higher scores. Its SVM offset, divided by the weight norm, is kept as
``stats["offset"]`` so that ``n . x + offset`` is the signed distance to the fitted
hyperplane (used by ``apply_edits(..., mode="distance")``).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import EditError, UsageError
from ..edit.bank import Direction
from ..edit.vectors import parse_layers

ProgressFn = Callable[[int, int], None]


@dataclass
class Samples:
    """Latent codes (N, d) in the fitted space, their scores (N,) (NaN = unscorable)."""

    codes: np.ndarray
    scores: np.ndarray
    space: str
    seconds_synth: float
    seconds_score: float


def sample_and_score(generator, scorer, samples: int, space: str = "w", *, batch: int = 16,
                     seed: int = 0, psi: float = 1.0, noise: str = "const",
                     device: str | torch.device = "cpu",
                     progress: ProgressFn | None = None) -> Samples:
    """Draw ``samples`` z from N(0, I) (seeded), synthesise in batches and score the images."""
    if space not in ("z", "w", "wp"):
        raise UsageError(f"unknown latent space {space!r}: use z, w or wp")
    if space != "z" and "w" not in getattr(generator, "spaces", ("z", "w", "wp")):
        raise UsageError(f"a {getattr(generator, 'kind', 'this')} generator has no W space: fit in z")
    if samples < 1 or batch < 1:
        raise UsageError("samples and batch must be positive")
    # All z drawn up front, so the samples do not depend on the batch size.
    all_z = torch.randn(samples, generator.z_dim, generator=torch.Generator().manual_seed(int(seed)))
    codes, scores = [], []
    t_synth = t_score = 0.0
    done = 0
    with torch.no_grad():
        while done < samples:
            n = min(batch, samples - done)
            z = all_z[done:done + n].to(device)
            t0 = time.perf_counter()
            ws = generator.mapping(z, psi=psi)
            images = generator.synthesis(ws, noise=noise)
            t1 = time.perf_counter()
            s = np.asarray(_as_numpy(scorer(images)), dtype=np.float64).reshape(-1)
            t2 = time.perf_counter()
            if s.shape[0] != n:
                raise EditError(f"scorer {getattr(scorer, 'name', scorer)!r} returned {s.shape[0]} "
                                f"scores for {n} images")
            codes.append((z if space == "z" else ws[:, 0]).double().cpu().numpy())
            scores.append(s)
            t_synth += t1 - t0
            t_score += t2 - t1
            done += n
            if progress is not None:
                progress(done, samples)
    return Samples(np.concatenate(codes), np.concatenate(scores), space, t_synth, t_score)


def fit_boundary(codes: np.ndarray, scores: np.ndarray, *, ratio: float = 0.02,
                 val_fraction: float = 0.3, seed: int = 0, C: float = 1.0):
    """Linear SVM between the top and bottom ``ratio`` of samples by score.

    Returns (unit normal (d,), offset, stats). Accuracies: ``val_accuracy`` on the held-out
    ``val_fraction`` of the extremes; ``all_accuracy`` on every scored sample, labelled by
    whether its score is above the median (InterFaceGAN's "all samples" check).
    """
    from sklearn.svm import SVC

    codes = np.asarray(codes, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if codes.ndim != 2 or codes.shape[0] != scores.shape[0]:
        raise UsageError(f"codes (N, d) and scores (N,) do not match: {codes.shape}, {scores.shape}")
    if not 0 < ratio <= 0.5:
        raise UsageError(f"ratio must be in (0, 0.5], got {ratio}")
    if not 0 < val_fraction < 1:
        raise UsageError(f"val_fraction must be in (0, 1), got {val_fraction}")
    ok = np.isfinite(scores)
    codes, scores = codes[ok], scores[ok]
    n = len(scores)
    chosen = int(n * ratio)
    n_val = int(round(chosen * val_fraction))
    if chosen - n_val < 2 or n_val < 1:
        raise UsageError(f"too few samples: {n} scored samples x ratio {ratio} gives {chosen} per "
                         f"side; use more samples or a larger ratio")
    order = np.argsort(scores, kind="stable")
    if scores[order[-chosen]] <= scores[order[chosen - 1]]:
        raise EditError("the scorer does not separate the samples (top and bottom scores overlap)")
    rng = np.random.default_rng(seed)
    pos, neg = order[::-1][:chosen].copy(), order[:chosen].copy()
    rng.shuffle(pos)
    rng.shuffle(neg)
    train = np.concatenate([pos[n_val:], neg[n_val:]])
    val = np.concatenate([pos[:n_val], neg[:n_val]])
    label = np.zeros(n, dtype=np.int64)
    label[pos] = 1

    clf = SVC(kernel="linear", C=C)
    clf.fit(codes[train], label[train])
    w = clf.coef_.reshape(-1).astype(np.float64)
    norm = float(np.linalg.norm(w))
    if not norm > 0:
        raise EditError("the SVM found no separating direction")
    normal, offset = w / norm, float(clf.intercept_[0]) / norm
    signed = codes @ normal + offset
    median = float(np.median(scores))
    stats = {
        "samples_scored": int(n), "ratio": float(ratio), "chosen_per_side": int(chosen),
        "train_size": int(len(train)), "val_size": int(len(val)), "svm_C": float(C),
        "train_accuracy": float(np.mean((signed[train] > 0) == label[train].astype(bool))),
        "val_accuracy": float(np.mean((signed[val] > 0) == label[val].astype(bool))),
        "all_accuracy": float(np.mean((signed > 0) == (scores > median))),
        "offset": offset,
        "score_min": float(scores.min()), "score_max": float(scores.max()),
        "score_median": median,
        "score_low_cut": float(scores[order[chosen - 1]]),
        "score_high_cut": float(scores[order[-chosen]]),
    }
    return normal, offset, stats


def fit_direction(generator, scorer, samples: int = 10000, space: str = "w", *, batch: int = 16,
                  ratio: float = 0.02, val_fraction: float = 0.3, seed: int = 0,
                  progress: ProgressFn | None = None, name: str | None = None,
                  model: str | None = None, layers=None, psi: float = 1.0, noise: str = "const",
                  C: float = 1.0, device: str | torch.device = "cpu") -> Direction:
    """Fit one direction for ``scorer`` on ``generator``; the result is ready for a bank.

    space: "z" (fit on z), "w" (fit on w = mapping(z)), or "wp" (fit on w, stored as a W+
    direction for ``layers``). psi=1: no truncation, as InterFaceGAN. ``name`` defaults to the
    scorer's name, ``model`` to the generator's ``model_id``/``name`` attribute if it has one.
    """
    layers_t = parse_layers(layers)
    if layers_t is not None and space == "z":
        raise UsageError("a layer range only applies to W/W+ directions")
    if layers_t is not None and layers_t[-1] >= getattr(generator, "num_ws", layers_t[-1] + 1):
        raise UsageError(f"layer {layers_t[-1]} is outside the generator's {generator.num_ws} W+ layers")
    t0 = time.perf_counter()
    data = sample_and_score(generator, scorer, samples, space, batch=batch, seed=seed, psi=psi,
                            noise=noise, device=device, progress=progress)
    normal, _, stats = fit_boundary(data.codes, data.scores, ratio=ratio,
                                    val_fraction=val_fraction, seed=seed, C=C)
    scorer_name = getattr(scorer, "name", None) or getattr(scorer, "__name__", "scorer")
    stats.update({"samples": int(samples), "unscorable": int(np.sum(~np.isfinite(data.scores))),
                  "scorer": str(scorer_name), "seed": int(seed), "psi": float(psi),
                  "noise": noise, "seconds": round(time.perf_counter() - t0, 3),
                  "seconds_synthesis": round(data.seconds_synth, 3),
                  "seconds_scoring": round(data.seconds_score, 3)})
    model_id = model_id_of(generator, model)
    return Direction(name or str(scorer_name), normal, str(model_id), space, layers_t, (), "fit", stats)


def model_id_of(generator, model: str | None = None) -> str:
    """The id directions of ``generator`` are stored under: ``model`` if given, else the
    generator's ``model_id``, its ``meta["name"]``, or ``unnamed-<kind>``."""
    if model:
        return str(model)
    meta = getattr(generator, "meta", None) or {}
    found = getattr(generator, "model_id", None) or (meta.get("name") if isinstance(meta, dict) else None)
    return str(found or f"unnamed-{getattr(generator, 'kind', 'generator')}")


def _as_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return x
