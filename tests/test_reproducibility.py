"""What README promises about reproducibility, exactly (issue 23: "within float rounding across
threads, batch sizes and engines" was not true of the optimising inverters):

- bit-identical where the same thread count and the same batches are used: a rerun with a
  fixed thread count, and the local and Ray engines with --threads N --batch 1;
- elsewhere (another thread count or batch size) another, equally good inversion: the stated
  tolerance is checked on the embedded model (bench/reproducibility.py measures it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from realedit.pipeline import Editor
from realedit.threads import Governor

from tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "demo" / "photos" / "astronaut.jpg"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(make_tiny_model(tmp_path_factory.mktemp("model")))


def _edit(editor, photo, threads, batch=1):
    editor.threads = Governor(threads)
    prepared = [editor.prepare(photo)]
    inv = editor.invert_prepared(prepared, batch=batch)[0]
    return inv, editor.apply(inv, {"age": 0.5})


# Two threads on a shared 2-core machine spin against other jobs (tests/conftest.py): slow.
@pytest.mark.parametrize("threads", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_rerun_with_a_fixed_thread_count_is_bit_identical(tiny, threads):
    if threads > len(__import__("os").sched_getaffinity(0)):
        pytest.skip("needs 2 CPUs")
    a_inv, a = _edit(Editor.from_pretrained(tiny, inverter="optimize", steps=12), ASTRONAUT, threads)
    b_inv, b = _edit(Editor.from_pretrained(tiny, inverter="optimize", steps=12), ASTRONAUT, threads)
    assert torch.equal(a_inv.faces[0].latent, b_inv.faces[0].latent)
    assert np.array_equal(a.photo.rgb, b.photo.rgb)


@pytest.mark.slow
def test_another_thread_count_stays_within_the_stated_tolerance():
    """README: another thread count (or batch size, or engine) gives another, equally good
    inversion; measured tolerance on the embedded model's default inverter: final loss within
    5 %, and inside the paste mask a mean difference under 3 levels."""
    ed = Editor.from_pretrained("realedit-celeba64")
    one_inv, one = _edit(ed, ASTRONAUT, 1)
    two_inv, two = _edit(ed, ASTRONAUT, 2)
    fa, fb = one_inv.faces[0], two_inv.faces[0]
    assert abs(fa.loss - fb.loss) <= 0.05 * fa.loss
    m = np.maximum(one.mask, two.mask) > 0
    d = np.abs(one.photo.rgb.astype(int) - two.photo.rgb.astype(int)).max(axis=2)
    assert d[m].mean() < 3.0
    assert d[~m].max() == 0          # outside the paste mask nothing moves, whatever the threads
