"""The official stack end to end, without internet: random-weight files in the official formats
are served from a local HTTP server (127.0.0.1), the built-in registry entries are pointed at it
(same names, fields and sets; only URLs and checksums are those of the fixtures), and a user's
commands run as in the README:

    realedit weights download stylegan2-ffhq-1024 --all   # ada pickle + e4e checkpoint + e4e files
    realedit photo.jpg --model stylegan2-ffhq-1024 --attr age=+3 --keep smile
    realedit weights download stylegan-ffhq-1024 --all    # TF1 pickle + InterFaceGAN boundaries
    realedit photo.jpg --model stylegan-ffhq-1024 --attr age=+3 --keep gender

Small configurations of the same layouts (a 32 px StyleGAN2, a narrow IR-SE-50 e4e) keep it
fast; the full-size timing is bench/official.py's.
"""
from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from datapaths import ASTRONAUT
from fixtures_models import (export_ada, export_psp, export_tf_stylegan, psp_encoder_shapes,
                             random_psp_encoder_state, tiny_stylegan, tiny_stylegan2,
                             tiny_stylegan2_D)
from local_http import server  # noqa: F401  (fixture)
from realedit import weights as W
from realedit.cli import cli

pytestmark = pytest.mark.slow


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def unit(shape, seed):
    v = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return v / v.norm(dim=-1, keepdim=True)


@pytest.fixture
def env(tmp_path, monkeypatch, server):  # noqa: F811
    """Official files (small) served locally; a registry file points the built-in entries at them."""
    monkeypatch.setenv("REALEDIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("REALEDIT_OFFLINE", raising=False)
    monkeypatch.delenv("REALEDIT_BOUNDARIES", raising=False)  # the registry's files, not ../shared's
    G2 = tiny_stylegan2(seed=4, resolution=32)
    G1 = tiny_stylegan(seed=5, resolution=32, z_dim=512, w_dim=512)
    enc = random_psp_encoder_state(psp_encoder_shapes(G2.num_ws, (16, 32, 32, G2.w_dim), stem=16), 6)
    la = G2.w_avg.detach().repeat(G2.num_ws, 1)
    g = torch.Generator().manual_seed(7)
    comp = unit((80, 1, G2.w_dim), 8)
    files = {  # registry name -> (url path, bytes)
        # with its discriminator, as ffhq.pkl: hybrid's default loss uses its features
        "stylegan2-ffhq-1024": ("/nvlabs/ffhq.pkl", export_ada(G2, tiny_stylegan2_D(4, 32))),
        "e4e-ffhq-encoder": ("/drive/e4e_ffhq_encode.pt", torch_bytes(export_psp(enc, G2, latent_avg=la))),
        "e4e-ffhq-age": ("/e4e/age.pt", torch_bytes(unit((1, G2.w_dim), 9))),
        "e4e-ffhq-smile": ("/e4e/smile.pt", torch_bytes(unit((1, G2.w_dim), 10))),
        "e4e-ffhq-pose": ("/e4e/pose.pt", torch_bytes(unit((1, G2.w_dim), 11).repeat(1, G2.num_ws, 1))),
        "e4e-ffhq-ganspace-pca": ("/e4e/ffhq_pca.pt", torch_bytes(
            # spreads small enough that e4e's strengths (+-20 std) stay on this model's faces
            {"mean": G2.w_avg.detach()[None].clone(), "comp": comp,
             "std": torch.rand(80, generator=g) * 0.03 + 0.02})),
        "stylegan-ffhq-1024": ("/nvlabs/karras2019stylegan-ffhq-1024x1024.pkl", export_tf_stylegan(G1)),
    }
    # LPIPS's VGG16 backbone (StyleGAN v1 has no discriminator realedit reads, so its inversion
    # loss is LPIPS): torchvision's layout, the convolutions LPIPS uses, random values
    files["vgg16-backbone"] = ("/torch/vgg16-397923af.pth", torch_bytes(_vgg_features(g)))
    files["lpips-vgg-head"] = ("/lpips/vgg.pth", torch_bytes(  # lpips v0.1 linear heads
        {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) / c
         for k, c in enumerate((64, 128, 256, 512, 512))}))
    reg = W.registry()
    for e in reg.values():  # StyleGAN FFHQ's InterFaceGAN boundaries (Z and W, conditional ones)
        if e.bank == "stylegan_ffhq":
            arr = unit((1, 512), len(files)).double().numpy()
            buf = io.BytesIO()
            np.save(buf, arr)
            files[e.name] = (f"/igan/{e.file}", buf.getvalue())
    lines = ["schema = 1"]
    for name, (path, data) in files.items():
        server.files[path] = data
        e = reg[name]
        fields = {"file": e.file, "kind": e.kind, "format": e.format, "role": e.role,
                  "urls": [server.url(path)], "size": len(data),
                  "sha256": [hashlib.sha256(data).hexdigest()], "checksum_source": "computed",
                  "licence": e.licence, "licence_note": e.licence_note,
                  "boundaries": e.boundaries, "bank": e.bank, "encoder": e.encoder}
        if e.resolution:
            fields["resolution"] = e.resolution
        fields.update(e.extra)
        lines.append(f"[weights.{W._toml_value(name)}]")
        lines += [f"{k} = {W._toml_value(v)}" for k, v in fields.items() if v not in ("", None)]
    (tmp_path / "local.toml").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("REALEDIT_REGISTRY", str(tmp_path / "local.toml"))
    return {"files": files, "home": tmp_path / "home", "tmp": tmp_path, "server": server}


# torchvision vgg16().features: index of each 3x3 conv and its (out, in) channels
VGG16_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128),
               12: (256, 256), 14: (256, 256), 17: (512, 256), 19: (512, 512), 21: (512, 512),
               24: (512, 512), 26: (512, 512), 28: (512, 512)}


def _vgg_features(g) -> dict:
    return {k: v for i, (o, c) in VGG16_CONVS.items() for k, v in
            ((f"features.{i}.weight", torch.randn(o, c, 3, 3, generator=g) / (3 * c ** 0.5)),
             (f"features.{i}.bias", torch.zeros(o)))}


def invoke(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


def check_edit(photo, out, res):
    assert res.exit_code == 0, res.output
    before = np.asarray(Image.open(photo).convert("RGB"), np.int16)
    after = np.asarray(Image.open(out).convert("RGB"), np.int16)
    assert after.shape == before.shape  # the whole photo back, same size
    changed = np.abs(after - before).max(-1) > 8
    assert changed.any()  # the face was edited and pasted back ...
    ys, xs = np.nonzero(changed)
    h, w = changed.shape
    # ... and only around it: the astronaut's face is in the upper middle of the photo
    assert changed.mean() < 0.2 and xs.min() > 0.05 * w and ys.max() < 0.75 * h


def test_stylegan2_ffhq_with_e4e_end_to_end(env, tmp_path, monkeypatch):
    server, home = env["server"], env["home"]
    gen_path, gen_bytes = env["files"]["stylegan2-ffhq-1024"]
    e4e_path, e4e_bytes = env["files"]["e4e-ffhq-encoder"]
    # first try: the e4e file arrives with one byte changed, the generator's transfer is cut
    bad = bytearray(e4e_bytes)
    bad[len(bad) // 2] ^= 0x01
    server.files[e4e_path] = bytes(bad)
    server.truncate_once[gen_path] = len(gen_bytes) // 3
    res = invoke("weights", "download", "stylegan2-ffhq-1024", "--all")
    assert res.exit_code == 5, res.output
    assert "sha256" in res.output and "e4e-ffhq-encoder" in res.output
    assert "licence NVIDIA-SCL-NC" in res.output  # shown before each download
    assert not (home / "weights" / "e4e_ffhq_encode.pt").exists()  # refused, nothing kept
    assert (home / "weights" / "ffhq.pkl.part").stat().st_size == len(gen_bytes) // 3
    assert (home / "weights" / "e4e_ffhq_age.pt").is_file()  # the others came
    status = invoke("weights", "list").output
    assert "stylegan2-ffhq-1024" in status and "4/6 files" in status.split("stylegan2-ffhq-1024 ")[1].splitlines()[0]

    server.files[e4e_path] = e4e_bytes
    server.requests.clear()
    res = invoke("weights", "download", "stylegan2-ffhq-1024", "--all")
    assert res.exit_code == 0, res.output
    assert (gen_path, f"bytes={len(gen_bytes) // 3}-") in server.requests  # resumed, not restarted
    assert not any(p == "/e4e/age.pt" for p, _ in server.requests)  # already here: not fetched
    assert (home / "weights" / "ffhq.pkl").read_bytes() == gen_bytes
    row = [ln for ln in invoke("weights", "list").output.splitlines()
           if ln.startswith("stylegan2-ffhq-1024 ")][0]
    assert row.split()[-1] == "complete"

    # the edit needs no network now; e4e is the default inverter; W directions on W+ codes
    monkeypatch.setenv("REALEDIT_OFFLINE", "1")
    photo, out = ASTRONAUT, tmp_path / "out" / "astronaut_edited.png"
    res = invoke(photo, "--model", "stylegan2-ffhq-1024", "--attr", "age=+3", "--keep", "smile",
                 "-o", out, "-q")
    check_edit(photo, out, res)
    assert "inverter: e4e" in res.output
    # gender is no direction of e4e's set: one clear line, exit 2, listing what there is
    res = invoke(photo, "--model", "stylegan2-ffhq-1024", "--attr", "age=+3", "--keep", "gender",
                 "-o", tmp_path / "out2", "-q")
    assert res.exit_code == 2 and "gender" in res.output and "smile" in res.output, res.output
    # the e4e file alone is a model too (its decoder), with the same directions; a named
    # GANSpace edit (e4e's eye_openness: layer 7 of this 32 px model's 8)
    res = invoke(photo, "--model", "e4e-ffhq-encoder", "--attr", "eye_openness=+1",
                 "-o", tmp_path / "out3" / "a.png", "-q")
    check_edit(photo, tmp_path / "out3" / "a.png", res)
    assert "inverter: e4e" in res.output
    # hybrid (and pti) start from the e4e code
    res = invoke(photo, "--model", "stylegan2-ffhq-1024", "--attr", "age=+3", "--inverter",
                 "hybrid", "--steps", "2", "-o", tmp_path / "out4" / "a.png", "-q")
    check_edit(photo, tmp_path / "out4" / "a.png", res)
    assert "inverter: hybrid" in res.output


def test_stylegan_ffhq_with_interfacegan_end_to_end(env, tmp_path):
    home = env["home"]
    res = invoke("weights", "download", "stylegan-ffhq-1024", "--all")
    assert res.exit_code == 0, res.output
    assert len(list((home / "weights").glob("stylegan_ffhq_*_boundary.npy"))) == 14
    photo, out = ASTRONAUT, tmp_path / "o" / "astronaut.png"
    res = invoke(photo, "--model", "stylegan-ffhq-1024", "--attr", "age=+3", "--keep", "gender",
                 "--steps", "3", "-o", out, "-q")
    check_edit(photo, out, res)
    assert "inverter: optimize" in res.output  # no encoder for StyleGAN (v1): optimisation
