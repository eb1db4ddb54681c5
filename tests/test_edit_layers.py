"""Layer-window search: on a generator whose layers are known, it must find the window that
edits the target without moving the kept attribute."""
import numpy as np
import pytest

from realedit.edit import Direction, format_layers
from realedit.research.layers import layer_windows, search_layers
from realedit.errors import EditError

D = 8


class LayeredToy:
    """'Images' are the W+ codes themselves: (N, num_ws, D) -> (N, 1, num_ws, D)."""
    z_dim, w_dim, num_ws = D, D, 6

    def mapping(self, z):
        return z[:, None].repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise="const"):
        return ws[:, None]


def _dirs():
    v = np.zeros(D); v[0] = 1.0
    return v


def target(img):  # every layer carries the target along coordinate 0
    return img[:, 0, :, 0].mean(dim=1).numpy()


def kept_coarse(img):  # the kept attribute reacts to layers 0-1 along coordinate 0 only
    return img[:, 0, :2, 0].mean(dim=1).numpy()


def test_windows_cover_blocks():
    wins = layer_windows(6)
    assert wins[0] == (0, 1, 2, 3, 4, 5)
    assert set(wins) == {(0, 1), (2, 3), (4, 5), (0, 1, 2, 3), (2, 3, 4, 5), (0, 1, 2, 3, 4, 5)}


def test_search_avoids_layers_that_move_kept_attribute():
    d = Direction("t", _dirs(), "toy", "w")
    layers, table = search_layers(LayeredToy(), d, target, {"k": kept_coarse}, {"k": 0.1},
                                  amount=3.0, samples=64)
    assert layers == (2, 3, 4, 5)        # widest window that leaves layers 0-1 alone
    assert table[0].layers is None and table[0].success == 0.0   # all layers: kept drifts
    best = next(r for r in table if r.layers == layers)
    assert best.success == 1.0 and best.drift_mean["k"] < 1e-6
    assert best.target_change == pytest.approx(2.0, rel=1e-5)   # 4 of 6 layers moved by 3


def test_all_layers_kept_when_nothing_drifts():
    d = Direction("t", _dirs(), "toy", "w")
    layers, _ = search_layers(LayeredToy(), d, target, {}, {}, amount=-2.0, samples=16)
    assert layers is None


def test_min_effect_rules_out_weak_windows():
    # A kept attribute that every window but the narrowest would move: with min_effect 0.5
    # the narrow window (1/3 of the effect) is not eligible, so all layers stay.
    def kept_wide(img):
        return img[:, 0, :4, 0].mean(dim=1).numpy()
    d = Direction("t", _dirs(), "toy", "w")
    layers, table = search_layers(LayeredToy(), d, target, {"k": kept_wide}, {"k": 0.1},
                                  samples=16, min_effect=0.5)
    assert layers is None
    narrow = next(r for r in table if r.layers == (4, 5))
    assert narrow.success == 1.0 and not narrow.eligible
    layers, _ = search_layers(LayeredToy(), d, target, {"k": kept_wide}, {"k": 0.1},
                              samples=16, min_effect=0.3)
    assert layers == (4, 5)


def test_bad_arguments():
    d = Direction("t", _dirs(), "toy", "w")
    with pytest.raises(EditError, match="tolerance"):
        search_layers(LayeredToy(), d, target, {"k": kept_coarse}, {}, samples=4)
    with pytest.raises(EditError, match="Z direction"):
        search_layers(LayeredToy(), Direction("t", _dirs(), "toy", "z"), target, {}, {}, samples=4)


def test_embedded_bank_edits_age_and_smile_on_their_chosen_layers():
    from realedit.edit import apply_edits, bank_for_model
    from realedit.pipeline import default_model_name

    name = default_model_name()
    bank = bank_for_model(name)
    num_ws = 10  # 64 px StyleGAN2
    for attr in ("age", "smile"):
        d = bank.get(attr, model=name, space="w")
        assert d.layers is not None and 0 < len(d.layers) < num_ws
        table = d.stats["layer_search"]
        chosen = next(r for r in table if r["eligible"] and r["layers"] != "all"
                      and r["layers"] == format_layers(d.layers))
        assert chosen["success"] >= table[0]["success"]
        # A plain edit touches exactly those rows of a W+ code; one with gender kept the rows
        # of the entry that serves it (a learned age|gender / smile|gender has its own window,
        # e.g. smile's includes the 8 px layers that shape the mouth).
        code = np.zeros((1, num_ws, d.dim), np.float32)
        for keep in ((), ("gender",)):
            served = bank.direction(attr, keep=keep, model=name, space=("wp", "w"))
            moved = apply_edits(code, "wp", {attr: 3.0}, keep=keep, bank=bank, model=name)
            touched = {i for i in range(num_ws) if np.abs(moved[0, i]).max() > 0}
            assert touched == set(served.layers)
        plain = bank.direction(attr, model=name, space=("wp", "w"))
        if attr == "age":  # W+ codes take the learned age entry (the SVM one serves W codes)
            kept = bank.direction(attr, keep=("gender",), model=name, space=("wp", "w"))
            assert plain.space == "wp" and plain.source == "learned" and plain.layers == kept.layers
        else:
            assert plain.layers == d.layers
