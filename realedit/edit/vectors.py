"""InterFaceGAN's maths on plain arrays: conditioning by orthogonal projection, cosines, W+
layer ranges. Pure functions, no state."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import EditError


def format_layers(layers: Sequence[int] | None) -> str:
    """(0,1,2,3,7) -> '0-3,7'."""
    if layers is None:
        return "all"
    out, run = [], []
    for i in sorted(layers):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def parse_layers(spec) -> tuple[int, ...] | None:
    """Layer spec as idinvert writes it: None/''/'all' (all), int, list, or '0-5' / '0,2,4-6'."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "all")):
        return None
    if isinstance(spec, (int, np.integer)):
        return (int(spec),)
    if isinstance(spec, str):
        out: list[int] = []
        try:
            for part in spec.replace(" ", "").split(","):
                a, sep, b = part.partition("-")
                out.extend(range(int(a), int(b) + 1) if sep else [int(a)])
        except ValueError:
            raise EditError(f"bad layer range {spec!r}: use e.g. '0-5' or '0,2,4-6'") from None
        if not out:
            raise EditError(f"bad layer range {spec!r}")
        return tuple(sorted(set(out)))
    try:
        out = sorted({int(i) for i in spec})
    except (TypeError, ValueError):
        raise EditError(f"bad layer range {spec!r}") from None
    return tuple(out) if out else None


def project_out(vector: np.ndarray, kept: Sequence[np.ndarray], *, name: str = "direction") -> np.ndarray:
    """Remove from ``vector`` its orthogonal projection onto span(kept), then renormalise.

    The projection is a least-squares fit of ``vector`` by the kept vectors (exact for any
    number of them, correlated or not; rank-deficient sets are fine). Layer-wise (L, d)
    vectors are handled row by row; a (d,) vector broadcasts against (L, d) ones.
    """
    v = np.asarray(vector, dtype=np.float64)
    ks = [np.asarray(k, dtype=np.float64) for k in kept]
    if not ks:
        return v / np.linalg.norm(v, axis=-1, keepdims=True)
    rows = max([v.shape[0] if v.ndim == 2 else 1] + [k.shape[0] if k.ndim == 2 else 1 for k in ks])
    layerwise = v.ndim == 2 or any(k.ndim == 2 for k in ks)
    V = np.broadcast_to(v, (rows, v.shape[-1])) if layerwise else v[None]
    out = np.empty_like(V)
    for r in range(V.shape[0]):
        C = np.stack([(k[r] if k.ndim == 2 else k) for k in ks], axis=1)  # (d, k)
        coef, *_ = np.linalg.lstsq(C, V[r], rcond=None)
        res = V[r] - C @ coef
        n = np.linalg.norm(res)
        if n < 1e-8:
            raise EditError(f"{name} lies in the span of the kept attributes: nothing is left to edit")
        out[r] = res / n
    return out if layerwise else out[0]


def _mean_cos(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two unit directions; layer-wise ones: mean over rows."""
    a, b = np.broadcast_arrays(np.atleast_2d(a), np.atleast_2d(b))
    return float(np.mean(np.sum(a * b, axis=-1)))


def cosine_matrix(directions: Sequence) -> np.ndarray:
    """Cosines between directions (anything with a ``vector``), compared on flattened rows."""
    if not directions:
        return np.zeros((0, 0))
    dims = {d.vector.size for d in directions}
    if len(dims) != 1:
        raise EditError("cannot compare directions of different sizes")
    M = np.stack([d.vector.ravel() / np.linalg.norm(d.vector.ravel()) for d in directions])
    return M @ M.T
