"""Weights registry: built-in entries, verified/resumable downloads from a local HTTP server,
offline mode, web pages saved instead of weights, pins, user files, and the CLI."""
from __future__ import annotations

import bz2
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from realedit import weights as W
from realedit.commands.weights import cli
from realedit.errors import (
    ChecksumError,
    DownloadError,
    FormatError,
    UsageError,
    WeightsError,
    WeightsNotFound,
)

from datapaths import SHARED  # noqa: E402  (honours REALEDIT_SHARED)
from local_http import server  # noqa: F401  (fixture)
PAYLOAD = b"\x80\x04" + bytes(range(256)) * 1200  # looks like a pickle, 307 KB
SHA = hashlib.sha256(PAYLOAD).hexdigest()
DRIVE_PAGE = (b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>"
              b"<body>Too many users have viewed or downloaded this file recently.</body></html>")


# ----------------------------------------------------------------------------------------------
# Fixtures: isolated cache + registry; the Range-capable HTTP server on 127.0.0.1 is local_http's


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    monkeypatch.setenv("REALEDIT_HOME", str(h))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # never pick up a real hub cache
    monkeypatch.delenv("REALEDIT_OFFLINE", raising=False)
    monkeypatch.delenv("REALEDIT_REGISTRY", raising=False)
    return h


@pytest.fixture
def reg(tmp_path, monkeypatch):
    """Write extra registry entries to a temp file listed in REALEDIT_REGISTRY."""
    path = tmp_path / "extra_registry.toml"

    def write(entries: dict) -> Path:
        path.write_text(W._dump_toml({"schema": 1, "weights": entries}), encoding="utf-8")
        monkeypatch.setenv("REALEDIT_REGISTRY", str(path))
        return path

    return write


def cache_files(home: Path) -> list[str]:
    d = home / "weights"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


# ----------------------------------------------------------------------------------------------
# Built-in registry

GENERATORS = {
    "pggan-celebahq-1024": ("karras2018iclr-celebahq-1024x1024.pkl", "pggan", "pggan_celebahq"),
    "stylegan-ffhq-1024": ("karras2019stylegan-ffhq-1024x1024.pkl", "stylegan", "stylegan_ffhq"),
    "stylegan-celebahq-1024": ("karras2019stylegan-celebahq-1024x1024.pkl", "stylegan",
                               "stylegan_celebahq"),
    "stylegan2-ffhq-1024": ("ffhq.pkl", "stylegan2", "e4e_ffhq"),
    "stylegan2-ffhq-1024-tf": ("stylegan2-ffhq-config-f.pkl", "stylegan2", "e4e_ffhq"),
    "stylegan2-ffhq-1024-rosinality": ("stylegan2-ffhq-config-f.pt", "stylegan2", "e4e_ffhq"),
}


def test_builtin_registry_lists_every_official_file():
    r = W.registry()
    for name, (file, kind, bank) in GENERATORS.items():
        e = r[name]
        assert (e.file, e.kind, e.boundaries, e.resolution) == (file, kind, bank, 1024)
        assert e.licence and e.urls and e.role == "generator"
    expected = {
        "e4e-ffhq-encoder": "e4e_ffhq_encode.pt",
        "dlib-shape-predictor-68": "shape_predictor_68_face_landmarks.dat",
        "dlib-shape-predictor-5": "shape_predictor_5_face_landmarks.dat",
        "dlib-mmod-face-detector": "mmod_human_face_detector.dat",
        "dlib-face-recognition-resnet": "dlib_face_recognition_resnet_model_v1.dat",
        "lpips-alex-head": "lpips_v0.1_alex.pth",
        "lpips-vgg-head": "lpips_v0.1_vgg.pth",
        "lpips-squeeze-head": "lpips_v0.1_squeeze.pth",
        "vgg16-backbone": "vgg16-397923af.pth",
        "alexnet-backbone": "alexnet-owt-7be5be79.pth",
        "interfacegan-stylegan-ffhq": "stylegan_ffhq.pth",
    }
    for name, file in expected.items():
        assert r[name].file == file and r[name].licence
    # every entry: a way to get it, and an honest statement of where its checksum comes from
    for e in r.values():
        assert e.urls or e.page or e.bundled, e.name  # bundled: shipped in weights/
        assert e.checksum_source in (
            "published", "computed", "mirror", "name-prefix", "none"), e.name
        if e.checksum_source == "none":
            assert not e.sha256 and not e.md5 and e.size is None, e.name
        if e.checksum_source == "name-prefix":
            assert e.sha256_prefix and e.sha256_prefix in e.file, e.name


def test_builtin_checksums_match_reference_facts():
    r = W.registry()
    assert r["stylegan2-ffhq-1024"].size == 381_624_121
    assert r["stylegan2-ffhq-1024"].sha256 == (
        "a205a346e86a9ddaae702e118097d014b7b8bd719491396a162cca438f2f524c",)
    assert r["stylegan2-ffhq-1024-tf"].size == 381_673_535
    assert r["e4e-ffhq-encoder"].size == 1_201_649_680
    d68 = r["dlib-shape-predictor-68"]
    assert (d68.size, d68.md5, d68.compression) == (
        99_693_937, ("73fde5e05226548677a050913eed4e04",), "bz2")
    assert all(u.endswith(".dat.bz2") for u in d68.urls) and "dlib.net/files/" in d68.urls[0]
    heads = ("lpips-alex-head", "lpips-vgg-head", "lpips-squeeze-head")
    lp = {n: (r[n].size, r[n].md5[0]) for n in heads}
    assert lp == {
        "lpips-alex-head": (6009, "9642209e2b57a85d20f86d812320f9e6"),
        "lpips-vgg-head": (7289, "d507d7349b931f0638a25a48a722f98a"),
        "lpips-squeeze-head": (10811, "6361044f0470b81956528320db0ba955"),
    }
    assert r["vgg16-backbone"].urls == ("https://download.pytorch.org/models/vgg16-397923af.pth",)
    assert r["alexnet-backbone"].urls == (
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",)


@pytest.mark.skipif(not (SHARED / "data" / "interfacegan_boundaries").is_dir(),
                    reason="../shared/data/interfacegan_boundaries is absent")
def test_boundary_banks_exist_for_paired_generators():
    files = os.listdir(SHARED / "data" / "interfacegan_boundaries")
    banks = {e.boundaries for e in W.registry().values() if e.boundaries}
    assert banks == {"pggan_celebahq", "stylegan_ffhq", "stylegan_celebahq", "e4e_ffhq"}
    for bank in banks - {"e4e_ffhq"}:
        assert any(f.startswith(bank + "_") and f.endswith("_boundary.npy") for f in files), bank


def test_every_released_direction_file_is_registered():
    """The 39 InterFaceGAN boundaries and e4e's 4 files: one entry each, with the size and sha256
    of ../shared's copies (computed), their repository URL, MIT licence, and the set they form."""
    r = W.registry()
    dirs = {e.file: e for e in r.values() if e.role == "directions" and e.bank}
    shared = SHARED / "data"
    igan = sorted(p for p in (shared / "interfacegan_boundaries").glob("*_boundary.npy")) \
        if (shared / "interfacegan_boundaries").is_dir() else []
    assert len([f for f in dirs if f.endswith("_boundary.npy")]) == 39
    for p in igan:
        e = dirs[p.name]
        data = p.read_bytes()
        assert (e.size, e.sha256, e.checksum_source) == (len(data), (hashlib.sha256(data).hexdigest(),), "computed")
        assert e.urls[0] == ("https://raw.githubusercontent.com/genforce/interfacegan/master/"
                             f"boundaries/{p.name}") and e.licence == "MIT"
        assert e.bank == p.name.split("_")[0] + "_" + p.name.split("_")[1]
    e4e = {e.name: e for e in r.values() if e.bank == "e4e_ffhq"}
    assert sorted(e4e) == ["e4e-ffhq-age", "e4e-ffhq-ganspace-pca", "e4e-ffhq-pose", "e4e-ffhq-smile"]
    for name, rel in (("age", "interfacegan_directions/age.pt"), ("smile", "interfacegan_directions/smile.pt"),
                      ("pose", "interfacegan_directions/pose.pt"), ("ganspace-pca", "ganspace_pca/ffhq_pca.pt")):
        e = e4e[f"e4e-ffhq-{name}"]
        assert e.urls[0] == f"https://raw.githubusercontent.com/omertov/encoder4editing/main/editings/{rel}"
        copy = shared / "e4e_directions" / rel.split("/")[1]
        if copy.is_file():
            assert e.sha256 == (hashlib.sha256(copy.read_bytes()).hexdigest(),)
    readme = shared / "e4e_directions" / "README.md"
    if readme.is_file():  # the README's table states the same digests
        for e in e4e.values():
            assert e.sha256[0] in readme.read_text()
    # every model with a direction set names files that exist in the registry
    for e in r.values():
        if e.role == "generator" and e.boundaries:
            assert any(d.bank == e.boundaries for d in r.values()), e.name


@pytest.mark.skipif(W.face_models_dir() is None, reason="face_recognition_models is not installed")
def test_dlib_entries_resolve_to_face_recognition_models(monkeypatch):
    monkeypatch.setenv("REALEDIT_OFFLINE", "1")
    for name in ("dlib-shape-predictor-68", "dlib-shape-predictor-5", "dlib-mmod-face-detector"):
        p = W.resolve(name)
        assert p == W.face_models_dir() / W.entry(name).file
    (res,) = W.verify("dlib-shape-predictor-5")  # 9 MB: hash check is quick
    assert res.status == "ok", res.detail


# ----------------------------------------------------------------------------------------------
# Downloads


def test_full_download_verifies_and_leaves_no_part(server, reg, home, capsys):
    server.files["/g.pkl"] = PAYLOAD
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/g.pkl")], "size": len(PAYLOAD),
                 "sha256": SHA}})
    p = W.resolve("toy")
    assert p == home / "weights" / "g.pkl" and p.read_bytes() == PAYLOAD
    assert cache_files(home) == ["g.pkl"]
    err = capsys.readouterr()
    assert "toy" in err.err and err.out == ""  # progress goes to stderr only
    n = len(server.requests)
    assert W.resolve("toy") == p and W.download("toy") == p
    assert len(server.requests) == n  # cached: no network


def test_resume_sends_range_and_completes(server, reg, home):
    server.files["/g.pkl"] = PAYLOAD
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/g.pkl")], "sha256": SHA}})
    (home / "weights").mkdir(parents=True)
    (home / "weights" / "g.pkl.part").write_bytes(PAYLOAD[:100_000])
    assert W.download("toy").read_bytes() == PAYLOAD
    assert server.requests == [("/g.pkl", "bytes=100000-")]
    assert cache_files(home) == ["g.pkl"]


def test_truncated_transfer_keeps_part_then_resumes(server, reg, home):
    server.files["/g.pkl"] = PAYLOAD
    server.truncate_once["/g.pkl"] = 50_000
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/g.pkl")], "sha256": SHA}})
    with pytest.raises(DownloadError, match="stopped at 50000 of .* resume"):
        W.resolve("toy")
    assert cache_files(home) == ["g.pkl.part"]
    assert (home / "weights" / "g.pkl.part").stat().st_size == 50_000
    assert W.resolve("toy").read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/g.pkl", "bytes=50000-")
    assert cache_files(home) == ["g.pkl"]


def test_chunked_stream_cut_short_is_a_download_error(server, reg, home):
    server.files["/g.pkl"] = PAYLOAD
    server.chunked_cut["/g.pkl"] = 40_000
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/g.pkl")]}})  # unpinned: must not pin
    with pytest.raises(DownloadError, match="broke at .*IncompleteRead.*resume"):
        W.download("toy")
    assert W.pin("toy") is None and not (home / "weights" / "g.pkl").exists()
    kept = (home / "weights" / "g.pkl.part").stat().st_size
    assert 0 < kept <= 40_000 and kept % 8192 == 0  # the complete chunks received
    assert W.download("toy").read_bytes() == PAYLOAD  # resumed from the kept prefix
    assert server.requests[-1] == ("/g.pkl", f"bytes={kept}-")


def test_bad_checksum_leaves_nothing_in_cache(server, reg, home):
    server.files["/g.pkl"] = PAYLOAD
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/g.pkl")], "sha256": "0" * 64}})
    with pytest.raises(ChecksumError, match="sha256 .* expected 0000"):
        W.resolve("toy")
    assert cache_files(home) == []  # neither the file nor its .part


def test_bad_file_from_first_mirror_falls_through_to_second(server, reg, home):
    server.files["/bad.pkl"] = PAYLOAD[::-1]
    server.files["/g.pkl"] = PAYLOAD
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/bad.pkl"), server.url("/g.pkl")],
                 "sha256": SHA}})
    assert W.download("toy").read_bytes() == PAYLOAD
    assert [r[0] for r in server.requests] == ["/bad.pkl", "/g.pkl"]
    assert server.requests[1][1] is None  # the rejected bytes were not resumed from


def test_wrong_size_offered_is_refused_before_transfer(server, reg, home):
    server.files["/g.pkl"] = PAYLOAD
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/g.pkl")], "size": len(PAYLOAD) + 1}})
    with pytest.raises(DownloadError, match="offers 307202 bytes, the registry expects 307203"):
        W.download("toy")
    assert cache_files(home) == []


def test_http_error_is_one_line_download_error(server, reg, home):
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/missing.pkl")]}})
    with pytest.raises(DownloadError) as ei:
        W.download("toy")
    msg = str(ei.value)
    assert "HTTP 404" in msg and str(home / "weights" / "g.pkl") in msg and "\n" not in msg


def test_offline_never_touches_network(server, reg, home, monkeypatch):
    server.files["/g.pkl"] = PAYLOAD
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/g.pkl")], "sha256": SHA}})
    monkeypatch.setenv("REALEDIT_OFFLINE", "1")
    with pytest.raises(WeightsNotFound) as ei:
        W.resolve("toy")
    assert "REALEDIT_OFFLINE=1" in str(ei.value)
    assert str(home / "weights" / "g.pkl") in str(ei.value)
    with pytest.raises(WeightsNotFound):
        W.download("toy", force=True)
    assert server.requests == []
    # a file placed by hand at the named path is then used, still offline
    (home / "weights").mkdir(parents=True)
    (home / "weights" / "g.pkl").write_bytes(PAYLOAD)
    assert W.resolve("toy") == home / "weights" / "g.pkl"
    assert server.requests == []


def test_missing_file_message_names_exact_path(reg, home):
    reg({"nourl": {"file": "x.pt", "page": "https://example.org/x"},
         "withurl": {"file": "y.pt", "urls": ["http://127.0.0.1:9/y.pt"]}})
    with pytest.raises(WeightsNotFound) as ei:
        W.resolve("nourl")
    assert f"place it at {home / 'weights' / 'x.pt'}" in str(ei.value)
    assert "https://example.org/x" in str(ei.value)
    with pytest.raises(WeightsNotFound) as ei:
        W.resolve("withurl", download=False)
    assert f"place it at {home / 'weights' / 'y.pt'}" in str(ei.value)
    assert W.locate("withurl") == home / "weights" / "y.pt"


def test_google_drive_page_is_refused(server, reg, home):
    server.files["/drive"] = DRIVE_PAGE
    server.content_type["/drive"] = "text/html; charset=utf-8"
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/drive")]}})
    with pytest.raises(FormatError, match="Google Drive web page") as ei:
        W.download("toy")
    assert f"place it at {home / 'weights' / 'g.pkl'}" in str(ei.value)
    assert cache_files(home) == []
    assert W.pin("toy") is None  # a page must never be pinned as the weights


def test_page_from_first_mirror_falls_through_to_second(server, reg, home):
    server.files["/drive"] = DRIVE_PAGE
    server.files["/g.pkl"] = PAYLOAD
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/drive"), server.url("/g.pkl")],
                 "sha256": SHA}})
    assert W.download("toy").read_bytes() == PAYLOAD


def test_stale_page_in_part_is_discarded(server, reg, home):
    server.files["/g.pkl"] = PAYLOAD
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/g.pkl")]}})  # nothing to check against
    (home / "weights").mkdir(parents=True)
    (home / "weights" / "g.pkl.part").write_bytes(DRIVE_PAGE)
    assert W.download("toy").read_bytes() == PAYLOAD
    assert server.requests == [("/g.pkl", None)] and W.pin("toy")["sha256"] == SHA


def test_hand_placed_html_is_refused(reg, home):
    reg({"toy": {"file": "g.pkl", "urls": ["http://127.0.0.1:9/g.pkl"]}})
    (home / "weights").mkdir(parents=True)
    (home / "weights" / "g.pkl").write_bytes(b"\n  " + DRIVE_PAGE)
    with pytest.raises(FormatError, match="not a weight file"):
        W.resolve("toy")
    with pytest.raises(FormatError):
        W.resolve(home / "weights" / "g.pkl")  # also when given as a path
    (res,) = W.verify("toy")
    assert res.status == "page" and not res.ok


def test_pin_on_first_download_then_enforced(server, reg, home, capsys):
    server.files["/g.pkl"] = PAYLOAD
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/g.pkl")]}})  # no checksum published
    p = W.download("toy")
    pins = json.loads((home / "pins.json").read_text())
    assert pins["toy"]["sha256"] == SHA and pins["toy"]["size"] == len(PAYLOAD)
    assert "pinned" in capsys.readouterr().err
    # the server now hands out something else: the pin catches it and the good copy stays
    server.files["/g.pkl"] = PAYLOAD[::-1]
    with pytest.raises(ChecksumError, match="pinned"):
        W.download("toy", force=True)
    assert p.read_bytes() == PAYLOAD and cache_files(home) == ["g.pkl"]
    (res,) = W.verify("toy")
    assert res.status == "pinned" and res.ok


def test_pinned_size_checked_on_resolve(server, reg, home):
    server.files["/g.pkl"] = PAYLOAD
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/g.pkl")]}})
    p = W.download("toy")
    p.write_bytes(PAYLOAD[:1000])  # truncated later (disk full, bad copy, ...)
    with pytest.raises(ChecksumError, match="1000 bytes, expected 307202"):
        W.resolve("toy")


def test_sha256_prefix_in_name_is_checked(server, reg, home):
    server.files["/n.pth"] = PAYLOAD
    url = [server.url("/n.pth")]
    reg({"good": {"file": f"net-{SHA[:8]}.pth", "urls": url, "sha256_prefix": SHA[:8]},
         "bad": {"file": "net-deadbeef.pth", "urls": url, "sha256_prefix": "deadbeef"}})
    assert W.download("good").read_bytes() == PAYLOAD
    assert W.pin("good")["sha256"] == SHA
    with pytest.raises(ChecksumError, match="does not start with deadbeef"):
        W.download("bad")
    assert cache_files(home) == [f"net-{SHA[:8]}.pth"]


def test_bz2_download_is_decompressed_and_checked(server, reg, home):
    server.files["/m.dat.bz2"] = bz2.compress(PAYLOAD)
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    reg({"lm": {"file": "m.dat", "urls": [server.url("/m.dat.bz2")], "compression": "bz2",
                "size": len(PAYLOAD), "md5": md5}})
    assert W.download("lm").read_bytes() == PAYLOAD
    assert cache_files(home) == ["m.dat"]


def test_corrupt_bz2_leaves_nothing(server, reg, home):
    server.files["/m.dat.bz2"] = b"BZh9" + PAYLOAD[:5000]
    reg({"lm": {"file": "m.dat", "urls": [server.url("/m.dat.bz2")], "compression": "bz2"}})
    with pytest.raises(ChecksumError, match="corrupt"):
        W.download("lm")
    assert cache_files(home) == []


def test_complete_part_answered_416_is_finished(server, reg, home):
    server.files["/g.pkl"] = PAYLOAD
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/g.pkl")], "sha256": SHA}})
    (home / "weights").mkdir(parents=True)
    (home / "weights" / "g.pkl.part").write_bytes(PAYLOAD)
    assert W.download("toy").read_bytes() == PAYLOAD
    assert server.requests == [("/g.pkl", f"bytes={len(PAYLOAD)}-")]


def test_server_ignoring_range_restarts_cleanly(server, reg, home):
    server.files["/g.pkl"] = PAYLOAD
    server.ignore_range.add("/g.pkl")
    reg({"toy": {"file": "g.pkl", "urls": [server.url("/g.pkl")], "sha256": SHA}})
    (home / "weights").mkdir(parents=True)
    (home / "weights" / "g.pkl.part").write_bytes(b"\x00" * 777)  # stale garbage
    assert W.download("toy").read_bytes() == PAYLOAD


# ----------------------------------------------------------------------------------------------
# Registry files, resolve() on paths, bundled entries, verify


def test_resolve_existing_path_and_unknown_names(tmp_path):
    f = tmp_path / "model.pt"
    f.write_bytes(PAYLOAD)
    assert W.resolve(f) == f and W.resolve(str(f)) == f
    with pytest.raises(WeightsNotFound, match="no such weights file"):
        W.resolve(tmp_path / "nope.pt")
    with pytest.raises(WeightsNotFound, match="did you mean stylegan2-ffhq-1024"):
        W.resolve("stylegan2-ffhq-1042")


@pytest.mark.parametrize("text, match", [
    ("[weights.x\nfile = 1", "not valid TOML"),
    ('[weights.x]\nfile = "a.pt"\nsha256 = "abc"', "not 64 hex digits"),
    ('[weights.x]\nkind = "pggan"', "'file' is required"),
    ('[weights.x]\nfile = "a.pt"\nurls = ["ftp://h/a.pt"]', "not http"),
    ('[weights.x]\nfile = "a.pt"\nresolution = "big"', "positive integer"),
    ('[weights.x]\nbundled = "../escape.pt"', "inside the weights/ folder"),
    ('[weights."bad name"]\nfile = "a.pt"', "names use letters"),
])
def test_registry_validation_errors_name_the_file(tmp_path, monkeypatch, text, match):
    p = tmp_path / "r.toml"
    p.write_text(text)
    with pytest.raises(WeightsError, match=match) as ei:
        W.registry(p)
    assert str(p) in str(ei.value)
    monkeypatch.setenv("REALEDIT_REGISTRY", str(p))
    with pytest.raises(WeightsError):
        W.entry("x")


def test_registry_env_file_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("REALEDIT_REGISTRY", str(tmp_path / "typo.toml"))
    with pytest.raises(WeightsError, match="registry file not found"):
        W.registry()


def test_extra_registry_overrides_and_keeps_unknown_keys(reg):
    reg({"stylegan2-ffhq-1024": {"file": "other.pkl", "kind": "stylegan2", "future_key": "kept"}})
    e = W.entry("stylegan2-ffhq-1024")
    assert e.file == "other.pkl" and e.extra == {"future_key": "kept"}
    assert "pggan-celebahq-1024" in W.registry()  # built-ins still there


def test_bundled_entries_resolve_in_repo_weights_folder(tmp_path, monkeypatch, reg):
    bdir = tmp_path / "repo_weights"
    bdir.mkdir()
    shutil.copy(W.builtin_registry_path(), bdir / "registry.toml")
    monkeypatch.setattr(W.entries, "bundled_dir", lambda: bdir)
    (bdir / "celeba64.pt").write_bytes(PAYLOAD)
    reg({"tiny": {"bundled": "celeba64.pt", "kind": "realedit", "format": "realedit-model",
                  "sha256": SHA, "resolution": 64},
         "gone": {"bundled": "gone.pt"}})
    e = W.entry("tiny")
    assert e.file == "celeba64.pt" and W.resolve("tiny") == bdir / "celeba64.pt"
    assert W.verify("tiny")[0].status == "ok"
    with pytest.raises(WeightsNotFound, match=re.escape(str(bdir / "gone.pt"))):
        W.resolve("gone")


def test_missing_builtin_registry_is_an_error_not_an_empty_registry(tmp_path, monkeypatch):
    # a wheel without weights/ used to load as a registry without the embedded model
    monkeypatch.setattr(W.entries, "bundled_dir", lambda: tmp_path)
    with pytest.raises(WeightsError, match="registry .* is missing.*incomplete"):
        W.registry()
    monkeypatch.undo()
    assert "realedit-celeba64" in W.registry()


def test_verify_reports_ok_mismatch_missing(reg, home, monkeypatch):
    monkeypatch.setattr(W.cache, "_package_dir", lambda package: None)  # skip hashing 130 MB of dlib
    reg({"a": {"file": "a.pt", "sha256": SHA}, "b": {"file": "b.pt", "sha256": SHA},
         "c": {"file": "c.pt", "sha256": SHA}})
    (home / "weights").mkdir(parents=True)
    (home / "weights" / "a.pt").write_bytes(PAYLOAD)
    (home / "weights" / "b.pt").write_bytes(PAYLOAD[:-1] + b"!")
    got = {r.name: r.status for r in W.verify() if r.name in "abc"}
    assert got == {"a": "ok", "b": "mismatch", "c": "missing"}
    assert W.verify("c")[0].path == home / "weights" / "c.pt"


# ----------------------------------------------------------------------------------------------
# add()


def test_add_user_file_in_place_and_copied(tmp_path, home):
    f = tmp_path / "mine.pt"
    f.write_bytes(PAYLOAD)
    e = W.add(f, "my-gan", kind="stylegan2", resolution=64, boundaries="stylegan_ffhq")
    assert (e.kind, e.resolution, e.sha256, e.size) == ("stylegan2", 64, (SHA,), len(PAYLOAD))
    assert W.resolve("my-gan") == f.resolve()
    assert W.registry(home / "registry.user.toml")["my-gan"].boundaries == "stylegan_ffhq"
    assert W.verify("my-gan")[0].status == "ok"
    c = W.add(f, "my-gan-copy", copy=True)
    assert W.resolve("my-gan-copy") == home / "weights" / "user" / "my-gan-copy" / "mine.pt"
    assert W.resolve("my-gan-copy").read_bytes() == PAYLOAD and c.name in W.registry()
    f.unlink()
    with pytest.raises(WeightsNotFound, match="add it again"):
        W.resolve("my-gan")


def test_add_refuses_pages_bad_names_and_unknown_fields(tmp_path, home):
    page = tmp_path / "stylegan.pkl"
    page.write_bytes(DRIVE_PAGE)
    with pytest.raises(FormatError, match="Google Drive"):
        W.add(page, "x")
    good = tmp_path / "g.pt"
    good.write_bytes(PAYLOAD)
    with pytest.raises(UsageError):
        W.add(good, "bad name!")
    with pytest.raises(UsageError, match="colour"):
        W.add(good, "x", colour="red")
    with pytest.raises(WeightsNotFound):
        W.add(tmp_path / "absent.pt", "x")
    assert not (home / "registry.user.toml").exists()


def test_add_with_registered_name_checks_and_installs(tmp_path, reg, home):
    reg({"toy": {"file": "g.pkl", "urls": ["http://127.0.0.1:9/g.pkl"], "sha256": SHA}})
    wrong = tmp_path / "wrong.pkl"
    wrong.write_bytes(PAYLOAD[::-1])
    with pytest.raises(ChecksumError, match="not the registered 'toy'"):
        W.add(wrong, "toy")
    assert cache_files(home) == []
    right = tmp_path / "Downloads.pkl"
    right.write_bytes(PAYLOAD)
    W.add(right, "toy")
    assert W.resolve("toy", download=False) == home / "weights" / "g.pkl"
    assert not (home / "registry.user.toml").exists()  # the built-in entry is reused, not shadowed


# ----------------------------------------------------------------------------------------------
# CLI


def _one_line_error(result, code=None):
    assert result.exit_code != 0
    if code is not None:
        assert result.exit_code == code
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_cli_list_download_path_verify(server, reg, home, monkeypatch):
    monkeypatch.setattr(W.cache, "_package_dir", lambda package: None)  # skip hashing 130 MB of dlib
    server.files["/g.pkl"] = PAYLOAD
    reg({"toy": {"file": "g.pkl", "kind": "stylegan2", "resolution": 64, "licence": "MIT",
                 "urls": [server.url("/g.pkl")], "sha256": SHA}})
    runner = CliRunner()
    out = runner.invoke(cli, ["list"])
    assert out.exit_code == 0
    rows = {ln.split()[0]: ln.split() for ln in out.output.splitlines()}
    assert rows["NAME"] == ["NAME", "KIND", "RES", "LICENCE", "CACHED", "MODEL"]
    assert rows["toy"] == ["toy", "stylegan2", "64", "MIT", "no", "-"]
    assert rows["pggan-celebahq-1024"][:3] == ["pggan-celebahq-1024", "pggan", "1024"]

    out = runner.invoke(cli, ["path", "toy"])
    assert out.exit_code == 0 and str(home / "weights" / "g.pkl") in out.output

    out = runner.invoke(cli, ["download", "toy"])
    assert out.exit_code == 0, out.output
    assert str(home / "weights" / "g.pkl") in out.output
    assert "toy" in runner.invoke(cli, ["list"]).output.split("cache")[0]

    out = runner.invoke(cli, ["verify", "toy"])
    assert out.exit_code == 0 and out.output.startswith("ok")
    (home / "weights" / "g.pkl").write_bytes(PAYLOAD[::-1])
    out = runner.invoke(cli, ["verify"])
    assert out.exit_code == 1 and "mismatch  toy" in out.output and "Traceback" not in out.output


def test_cli_errors_are_one_line(reg, home, monkeypatch, tmp_path):
    reg({"toy": {"file": "g.pkl", "urls": ["http://127.0.0.1:9/g.pkl"]}})
    runner = CliRunner()
    monkeypatch.setenv("REALEDIT_OFFLINE", "1")
    line = _one_line_error(runner.invoke(cli, ["download", "toy"]), code=5)
    assert str(home / "weights" / "g.pkl") in line
    _one_line_error(runner.invoke(cli, ["path", "no-such-weights"]), code=5)
    _one_line_error(runner.invoke(cli, ["verify", "toy"]))
    page = tmp_path / "p.pkl"
    page.write_bytes(DRIVE_PAGE)
    _one_line_error(runner.invoke(cli, ["add", str(page), "--name", "p"]), code=5)


def test_cli_add(tmp_path, home):
    f = tmp_path / "mine.pt"
    f.write_bytes(PAYLOAD)
    out = CliRunner().invoke(cli, ["add", str(f), "--name", "mine", "--kind", "pggan",
                                   "--resolution", "128", "--copy"])
    assert out.exit_code == 0, out.output
    e = W.entry("mine")
    assert (e.kind, e.resolution) == ("pggan", 128)
    assert W.resolve("mine") == home / "weights" / "user" / "mine" / "mine.pt"


def test_model_parts_are_what_download_all_fetches():
    from realedit.manifest import default_inverter, registered_parts

    names = lambda n: [e.name for e in registered_parts(n).entries]  # noqa: E731
    e4e_files = ["e4e-ffhq-age", "e4e-ffhq-ganspace-pca", "e4e-ffhq-pose", "e4e-ffhq-smile"]
    for model in ("stylegan2-ffhq-1024", "stylegan2-ffhq-1024-tf", "stylegan2-ffhq-1024-rosinality"):
        # e4e inverts (no refinement loss needed); its file is the encoder
        assert names(model) == [model, "e4e-ffhq-encoder", *e4e_files]
        assert default_inverter(model) == "encoder"
    assert names("e4e-ffhq-encoder") == ["e4e-ffhq-encoder", *e4e_files]  # encoder + decoder in one
    sg = names("stylegan-ffhq-1024")  # no encoder, no discriminator: optimised with LPIPS
    assert sg[0] == "stylegan-ffhq-1024" and sg[-2:] == ["lpips-vgg-head", "vgg16-backbone"]
    assert len([n for n in sg if n.startswith("interfacegan-stylegan_ffhq_")]) == 14
    assert default_inverter("stylegan-ffhq-1024") == "hybrid"
    assert names("dlib-shape-predictor-68") == ["dlib-shape-predictor-68"]
    assert names("realedit-celeba64")[:2] == ["realedit-celeba64", "realedit-celeba64-encoder"]
