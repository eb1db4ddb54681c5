"""pSp / e4e checkpoints: the official layout loads strictly, codes match a functional
re-computation from the state dict, the decoder is the model, bad files are refused.

The fixtures are written here in the released layout (tests/fixtures_models.py:
psp_encoder_shapes, export_psp): official tensor names and shapes, the checkpoint dict pSp and
e4e training saves, narrower widths than the released 64..512 so the suite stays fast.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from fixtures_models import (export_psp, psp_encoder_shapes, random_psp_encoder_state,
                             tiny_stylegan2)
from realedit import invert, models
from realedit.errors import FormatError, UnsafePickleError
from realedit.invert.encoder import load_encoder
from realedit.invert.psp import PSPEncoder

WIDTHS = (16, 32, 32, 16)   # stages of the IR-SE-50 body; the last one is w_dim of the generator


@pytest.fixture(scope="module")
def G():
    return tiny_stylegan2(seed=3, resolution=32)   # 8 W+ layers: coarse, middle and fine heads


@pytest.fixture(scope="module")
def enc_state(G):
    return random_psp_encoder_state(psp_encoder_shapes(G.num_ws, WIDTHS, stem=16), seed=5)


def latent_avg_for(G, rows: bool = True):
    la = G.w_avg.detach() + 0.1 * torch.randn(G.w_dim, generator=torch.Generator().manual_seed(8))
    return la.repeat(G.num_ws, 1) if rows else la


def write(tmp_path, G, enc_state, name="e4e.pt", **kw):
    path = tmp_path / name
    torch.save(export_psp(enc_state, G, **kw), path)
    return path


def reference_codes(sd: dict, x: torch.Tensor, family: str, latent_avg) -> torch.Tensor:
    """The encoder's forward pass written directly from the state dict with functional ops."""
    def bn(t, p):
        return F.batch_norm(t, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                            sd[f"{p}.bias"], False, 0.0, 1e-5)

    x = F.prelu(bn(F.conv2d(x, sd["input_layer.0.weight"], padding=1), "input_layer.1"),
                sd["input_layer.2.weight"])
    taps, u = [], 0
    for n in (3, 4, 14, 3):
        for i in range(n):
            s, p = (2 if i == 0 else 1), f"body.{u}"
            if f"{p}.shortcut_layer.0.weight" in sd:
                short = bn(F.conv2d(x, sd[f"{p}.shortcut_layer.0.weight"], stride=s),
                           f"{p}.shortcut_layer.1")
            else:
                short = x[:, :, ::s, ::s]
            r = F.conv2d(bn(x, f"{p}.res_layer.0"), sd[f"{p}.res_layer.1.weight"], padding=1)
            r = F.conv2d(F.prelu(r, sd[f"{p}.res_layer.2.weight"]), sd[f"{p}.res_layer.3.weight"],
                         stride=s, padding=1)
            r = bn(r, f"{p}.res_layer.4")
            gate = F.relu(F.conv2d(r.mean((2, 3), keepdim=True), sd[f"{p}.res_layer.5.fc1.weight"]))
            r = r * torch.sigmoid(F.conv2d(gate, sd[f"{p}.res_layer.5.fc2.weight"]))
            x = r + short
            if u in (6, 20, 23):
                taps.append(x)
            u += 1
    c64, c32, c16 = taps

    def up_add(top, lat):
        return F.interpolate(top, size=lat.shape[-2:], mode="bilinear", align_corners=True) + lat

    p32 = up_add(c16, F.conv2d(c32, sd["latlayer1.weight"], sd["latlayer1.bias"]))
    p64 = up_add(p32, F.conv2d(c64, sd["latlayer2.weight"], sd["latlayer2.bias"]))
    n_styles = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("styles."))

    def head(i):
        t = c16 if i < 3 else p32 if i < 7 else p64
        j = 0
        while f"styles.{i}.convs.{j}.weight" in sd:
            t = F.leaky_relu(F.conv2d(t, sd[f"styles.{i}.convs.{j}.weight"],
                                      sd[f"styles.{i}.convs.{j}.bias"], stride=2, padding=1), 0.01)
            j += 2
        w = sd[f"styles.{i}.linear.weight"]
        return F.linear(t.flatten(1), w / math.sqrt(w.shape[1]), sd[f"styles.{i}.linear.bias"])

    heads = [head(i) for i in range(n_styles)]
    codes = torch.stack(heads if family == "psp" else [heads[0]] + [heads[0] + h for h in heads[1:]], 1)
    return codes if latent_avg is None else codes + latent_avg.reshape(-1, codes.shape[-1])


def faces(n=2, size=256, seed=1):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("encoder_type,family", [("Encoder4Editing", "e4e"),
                                                 ("GradualStyleEncoder", "psp")])
@pytest.mark.parametrize("rows,namespace", [(True, False), (False, True)])
def test_codes_match_the_state_dict_forward(tmp_path, G, enc_state, encoder_type, family, rows,
                                            namespace):
    la = latent_avg_for(G, rows)
    path = write(tmp_path, G, enc_state, encoder_type=encoder_type, latent_avg=la,
                 opts_as_namespace=namespace)
    E = load_encoder(path)
    assert isinstance(E, PSPEncoder) and E.name == family
    assert (E.config.num_ws, E.config.w_dim, E.config.resolution) == (G.num_ws, G.w_dim, 256)
    x = faces(1)
    with torch.no_grad():
        got = E(x)
        want = reference_codes(enc_state, x, family, la)
    assert got.shape == (1, G.num_ws, G.w_dim)
    assert (got - want).abs().max() <= 1e-4
    # every head matters (a wrongly wired pyramid level or head would not be caught otherwise)
    raw = want - la.reshape(-1, G.w_dim)
    assert raw.std() > 0.05 and (raw[0, 1:] - raw[0, :1]).abs().amax(-1).min() > 1e-3


def test_e4e_layers_are_the_base_code_plus_deltas(tmp_path, G, enc_state):
    """With every head but the first silenced, an e4e encoder answers one code for all layers
    and a pSp encoder answers zeros beyond layer 0 (before latent_avg)."""
    quiet = {k: (torch.zeros_like(v) if k.startswith("styles.") and not k.startswith("styles.0.")
                 and "linear" in k else v) for k, v in enc_state.items()}
    x = faces(1)
    for etype in ("Encoder4Editing", "GradualStyleEncoder"):
        E = load_encoder(write(tmp_path, G, quiet, name=f"{etype}.pt", encoder_type=etype))
        assert not E.adds_latent_avg  # trained without start_from_latent_avg: codes as they are
        with torch.no_grad():
            codes = E(x)[0]
        if etype == "Encoder4Editing":
            assert torch.equal(codes, codes[:1].expand_as(codes))
        else:
            assert codes[0].abs().max() > 0 and torch.equal(codes[1:], torch.zeros_like(codes[1:]))


def test_inputs_of_other_sizes_are_resized_to_256(tmp_path, G, enc_state):
    E = load_encoder(write(tmp_path, G, enc_state, latent_avg=latent_avg_for(G)))
    x = faces(1, 1024)
    with torch.no_grad():
        assert torch.allclose(E(x), E(F.avg_pool2d(x, 4)), atol=1e-5)


def test_files_of_older_torch_versions(tmp_path, G, enc_state):
    """torch.save's pre-1.6 (non-zip) format, as older pSp checkpoints are: read (not mapped)."""
    la = latent_avg_for(G)
    path = tmp_path / "old.pt"
    torch.save(export_psp(enc_state, G, latent_avg=la), path, _use_new_zipfile_serialization=False)
    x = faces(1)
    with torch.no_grad():
        assert (load_encoder(path)(x) - reference_codes(enc_state, x, "e4e", la)).abs().max() <= 1e-4
    assert models.load(path).num_ws == G.num_ws


def test_the_decoder_is_the_generator(tmp_path, G, enc_state):
    la = latent_avg_for(G)
    path = write(tmp_path, G, enc_state, latent_avg=la)
    G2 = models.load(path)
    assert G2.kind == "stylegan2" and G2.meta["source_format"] == "e4e"
    assert G2.meta["encoder_type"] == "Encoder4Editing"
    assert torch.equal(G2.w_avg, la[0])  # e4e's latent_avg is its decoder's mean w
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(2)))
    with torch.no_grad():
        assert torch.allclose(G2.synthesis(ws, noise="const"), G.synthesis(ws, noise="const"),
                              atol=1e-5)


@pytest.mark.slow
def test_encoder_and_hybrid_inverters_take_the_file(tmp_path, G, enc_state):
    path = write(tmp_path, G, enc_state, latent_avg=latent_avg_for(G))
    x = faces(1, G.resolution)
    enc = invert.get("encoder", G, encoder=str(path))
    assert enc.name == "e4e" and float(enc.E.w_std) > 0 and enc.E.w_std_set
    r = enc.invert(x, "wp")
    with torch.no_grad():
        assert torch.equal(r.latent, enc.E(x))
    # hybrid's refinement starts from the e4e code: zero steps of it is the code itself
    h = invert.get("hybrid", G, encoder=str(path), loss="mse", steps=1, lr=0.0, wp_lr=0.0)
    assert torch.allclose(h.invert(x, "wp").latent, r.latent, atol=1e-6)
    # pti's pivot is that code (steps=0: e4e's alone), then a copy of G is tuned on the face
    p = invert.get("pti", G, encoder=str(path), loss="mse", steps=0, tune_steps=2)
    rp = p.invert(x, "wp")
    assert torch.equal(rp.latent, r.latent) and rp.generators and rp.generators[0] is not G


def test_refused_files(tmp_path, G, enc_state):
    def refused(obj, match, exc=FormatError):
        p = tmp_path / "bad.pt"
        torch.save(obj, p)
        with pytest.raises(exc, match=match):
            load_encoder(p)

    good = export_psp(enc_state, G)
    refused({**good, "opts": {**good["opts"], "encoder_type": "BackboneEncoderUsingLastLayerIntoW"}},
            "single-W encoder")
    refused({**good, "opts": {**good["opts"], "encoder_type": "Mystery"}}, "unknown pSp")
    refused({**good, "opts": {**good["opts"], "label_nc": 19}}, "segmentation")
    refused({k: v for k, v in good.items() if k != "opts"}, "without its 'opts'")
    sd = dict(good["state_dict"])
    del sd["encoder.styles.2.linear.bias"]
    refused({**good, "state_dict": sd}, "do not fit")
    sd = {k: v for k, v in good["state_dict"].items() if not k.startswith("encoder.body.23.")}
    refused({**good, "state_dict": sd}, "23 residual units")

    class Payload:  # anything outside the allow-list: never constructed
        def __reduce__(self):
            return (print, ("executed!",))
    p = tmp_path / "evil.pt"
    torch.save({**good, "opts": {**good["opts"], "x": Payload()}}, p, pickle_protocol=2)
    with pytest.raises(UnsafePickleError, match="allow-list"):
        load_encoder(p)
    with pytest.raises(UnsafePickleError):
        models.load(p)
