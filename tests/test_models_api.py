"""realedit.models public API: build, save/load of realedit model files, registry names, bad input."""
from __future__ import annotations


import pytest
import torch

import fixtures_models as fx
from realedit import models
from realedit.errors import FormatError, OutputError, UsageError, WeightsError, WeightsNotFound

TOL = 1e-6

TINY = {
    "pggan": dict(z_dim=12, fmap_base=64, fmap_max=16),
    "stylegan": dict(z_dim=16, w_dim=16, mapping_layers=2, fmap_base=64, fmap_max=16),
    "stylegan2": dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16),
}


def tiny(kind, seed=0):
    torch.manual_seed(seed)
    return fx.randomize_(models.build(kind, 16, **TINY[kind]).eval(), seed)


@pytest.mark.parametrize("kind", ["pggan", "stylegan", "stylegan2"])
def test_build_gives_the_protocol(kind):
    G = models.build(kind, 16, **TINY[kind])
    assert G.kind == kind and G.resolution == 16
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        ws = G.mapping(z)
        img = G.synthesis(ws, noise="const")
    assert ws.shape == (2, G.num_ws, G.w_dim) and img.shape == (2, 3, 16, 16)


def test_build_unknown_kind_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown generator kind 'biggan'"):
        models.build("biggan", 64)


@pytest.mark.parametrize("kind", ["pggan", "stylegan", "stylegan2"])
def test_save_load_round_trip(tmp_path, kind):
    G = tiny(kind)
    p = models.save(G, tmp_path / "m.pt", meta={"dataset": "tiny", "steps": 3})
    raw = torch.load(p, weights_only=True)  # the documented on-disk format
    assert raw["format"] == "realedit-model" and raw["version"] == 1 and raw["kind"] == kind
    assert raw["meta"] == {"dataset": "tiny", "steps": 3} and raw["D"] is None
    G2 = models.load(p)
    assert not G2.training and G2.config == G.config
    z = torch.randn(3, G.z_dim)
    with torch.no_grad():
        assert (G(z) - G2(z)).abs().max() <= TOL
    assert models.load_discriminator(p) is None
    assert list(tmp_path.iterdir()) == [p]  # no temp file left behind


def test_save_with_discriminator_and_reload(tmp_path):
    G, D = tiny("stylegan2"), fx.tiny_stylegan2_D()
    p = models.save(G, tmp_path / "gd.pt", discriminator=D)
    D2 = models.load_discriminator(p)
    img = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert (D(img) - D2(img)).abs().max() <= TOL


def test_converted_official_file_saves_as_realedit_model(tmp_path):
    G = fx.tiny_stylegan2()
    src = tmp_path / "stylegan2-tiny-config-f.pkl"
    src.write_bytes(fx.export_tf_stylegan2(G, fx.tiny_stylegan2_D()))
    G2 = models.load(src)
    p = models.save(G2, tmp_path / "converted.pt", discriminator=models.load_discriminator(src))
    G3 = models.load(p)
    assert G3.meta["tf_kwargs"]["resolution"] == 16
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert (G(z) - G3(z)).abs().max() <= 1e-5


def test_save_refuses_to_overwrite_a_foreign_file(tmp_path):
    G = tiny("stylegan2")
    src = tmp_path / "official.pkl"
    src.write_bytes(fx.export_tf_stylegan2(G))
    before = src.read_bytes()
    with pytest.raises(OutputError, match="not a realedit model"):
        models.save(G, src)
    assert src.read_bytes() == before
    p = models.save(G, tmp_path / "m.pt")
    models.save(G, p, meta={"again": True})  # a realedit model may be replaced
    assert models.load(p).meta["again"] is True


def test_save_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    G = tiny("pggan")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OutputError, match="No space left"):
        models.save(G, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_non_plain_meta(tmp_path):
    with pytest.raises(UsageError, match="plain data"):
        models.save(tiny("pggan"), tmp_path / "m.pt", meta={"x": object()})
    assert not (tmp_path / "m.pt").exists()


def test_own_file_with_missing_or_misshapen_tensor(tmp_path):
    G = tiny("stylegan")
    p = models.save(G, tmp_path / "m.pt")
    raw = torch.load(p, weights_only=True)
    del raw["G"]["synthesis.layer3.style.bias"]
    torch.save(raw, tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match=r"lacks 1 tensor\(s\), e.g. 'synthesis.layer3.style.bias'"):
        models.load(tmp_path / "missing.pt")
    raw = torch.load(p, weights_only=True)
    raw["G"]["synthesis.torgb.bias"] = torch.zeros(4)
    torch.save(raw, tmp_path / "shape.pt")
    with pytest.raises(WeightsError, match="has shape"):
        models.load(tmp_path / "shape.pt")
    raw = torch.load(p, weights_only=True)
    raw["version"] = 99
    torch.save(raw, tmp_path / "future.pt")
    with pytest.raises(FormatError, match="version 99"):
        models.load(tmp_path / "future.pt")


def test_truncated_own_file(tmp_path):
    p = models.save(tiny("stylegan2"), tmp_path / "m.pt")
    data = p.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) - 200])
    with pytest.raises(FormatError, match="truncated or corrupt"):
        models.load(tmp_path / "cut.pt")


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(WeightsNotFound):
        models.load(tmp_path / "nope.pt")
    with pytest.raises(WeightsError):
        models.load(tmp_path)


def test_a_torch_file_of_another_kind_is_a_format_error(tmp_path):
    torch.save({"state_dict": {"encoder.conv.weight": torch.zeros(3)}, "opts": {"lr": 1}}, tmp_path / "e4e.pt")
    with pytest.raises(FormatError, match="not a generator of a known family"):
        models.load(tmp_path / "e4e.pt")
    torch.save(torch.zeros(3), tmp_path / "t.pt")
    with pytest.raises(FormatError, match="holding Tensor"):
        models.load(tmp_path / "t.pt")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("REALEDIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REALEDIT_OFFLINE", "1")
    return tmp_path


def test_load_by_registry_name(home):
    from realedit import weights
    G = tiny("stylegan2")
    p = models.save(G, home / "tiny.pt")
    weights.add(p, name="tiny-sg2", kind="stylegan2", role="generator")
    G2 = models.load("tiny-sg2")
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert (G(z) - G2(z)).abs().max() <= TOL


def test_registry_kind_mismatch_is_a_format_error(home):
    from realedit import weights
    p = models.save(tiny("pggan"), home / "p.pt")
    weights.add(p, name="labelled-wrong", kind="stylegan2", role="generator")
    with pytest.raises(FormatError, match="holds a pggan generator, expected stylegan2"):
        models.load("labelled-wrong")


def test_unknown_registry_name_names_what_to_do(home):
    with pytest.raises(WeightsNotFound):
        models.load("no-such-weights-name")


def test_registered_non_generator_is_refused(home):
    from realedit import weights
    f = home / "enc.pt"
    torch.save({"x": torch.zeros(1)}, f)
    weights.add(f, name="some-encoder", kind="e4e", role="encoder")
    with pytest.raises(FormatError, match="not a generator"):
        models.load("some-encoder")


def test_load_on_device_argument(tmp_path):
    p = models.save(tiny("stylegan2"), tmp_path / "m.pt")
    G = models.load(p, device="cpu")
    assert next(G.parameters()).device.type == "cpu"
