"""`realedit serve`: the HTTP API through an HTTP client (Starlette's TestClient), with the
embedded model and its encoder (one forward pass per photo, so the tests stay quick).

What is checked: the edit a client downloads is the edit the Editor makes (same size, format,
pixels outside the paste mask untouched), bad uploads and bad requests get a 4xx JSON error
and the server keeps serving, sessions expire with their files, and two clients inverting at
once each get their own photo back, one of them seeing its place in the queue.
"""
from __future__ import annotations

import copy
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("fastapi_offline", reason="the serve extra is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from bad_inputs.make import landscape, png_bomb  # noqa: E402
from realedit.commands.serve import exposure_warning  # noqa: E402
from realedit.pipeline import Editor  # noqa: E402
from realedit.serve import ServeConfig, create_app  # noqa: E402
from realedit.prepare import downscaled  # noqa: E402
from realedit.serve.media import download_ext, safe_stem  # noqa: E402
from serve_helpers import GatedInverter, png_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "demo" / "photos" / "astronaut.jpg"


@pytest.fixture(scope="module")
def editor():
    return Editor.from_pretrained(inverter="encoder")


@pytest.fixture(scope="module")
def astronaut_png() -> bytes:
    return png_bytes(Image.open(ASTRONAUT).convert("RGB"))


@pytest.fixture(scope="module")
def client(editor):
    with TestClient(create_app(editor, ServeConfig(max_upload_bytes=4 * 2**20,
                                                   max_pixels=4_000_000))) as c:
        yield c


def upload(client, data: bytes, name: str = "photo.png", **form):
    return client.post("/api/sessions", files={"file": (name, data, "application/octet-stream")},
                       data=form)


def ready_session(client, data: bytes, name: str = "photo.png") -> dict:
    r = upload(client, data, name, faces="largest")
    assert r.status_code == 201, r.text
    s = client.get(f"/api/sessions/{r.json()['id']}", params={"wait": 60}).json()
    assert s["state"] == "ready", s
    return s


def decoded(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))


def assert_serving(client):
    r = client.get("/api/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


# ------------------------------------------------------------------------------ API

def test_health_and_attributes_come_from_the_bank(client, editor):
    h = client.get("/api/health").json()
    assert h["model"] == editor.model_name == "realedit-celeba64"
    attrs = client.get("/api/attributes").json()["attributes"]
    names = [a["name"] for a in attrs]
    assert sorted(names) == sorted(editor.bank.names(model=editor.model_name))
    assert {"age", "gender", "smile"} <= set(names)
    for a in attrs:
        d = editor.bank.get(a["name"], model=editor.model_name, space=("wp", "w"))
        span = d.amount_range if d.amount_range is not None else 3.0  # calibrated, else +-3
        assert a["min"] == -span and a["max"] == span and 0 < a["step"] < span
        assert a["calibrated"] == (d.amount_range is not None) and a["scale"] == d.scale


def test_upload_finds_faces_and_flags_the_patch(client):
    r = upload(client, ASTRONAUT.read_bytes(), "astronaut.jpg")
    assert r.status_code == 201, r.text
    s = r.json()
    assert (s["width"], s["height"], s["format"], s["state"]) == (512, 512, "JPEG", "detected")
    assert len(s["faces"]) == 1
    left, top, right, bottom = s["faces"][0]["box"]
    assert 150 < left < right < 300 and 50 < top < bottom < 200  # the astronaut's face
    assert any("non-face" in k["reason"] for k in s["skipped"])  # the mission patch
    assert client.delete(f"/api/sessions/{s['id']}").status_code == 200


def test_full_size_edit_is_the_editors_edit(client, editor, astronaut_png):
    s = ready_session(client, astronaut_png, "astronaut.png")
    r = client.get(f"/api/sessions/{s['id']}/image",
                   params={"edit": ["smile=2.5", "age=-1"], "keep": ["gender"], "size": "full"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"] == 'attachment; filename="astronaut_edited.png"'
    got = decoded(r.content)
    src = np.asarray(Image.open(io.BytesIO(astronaut_png)).convert("RGB"))
    want = editor.apply(editor.invert(src), {"smile": 2.5, "age": -1}, ["gender"])
    assert got.shape == src.shape
    outside = want.mask == 0
    assert outside.mean() > 0.5
    assert np.array_equal(got[outside], src[outside])  # bit-exact outside the paste mask
    inside = want.mask > 0.5
    assert np.abs(got[inside].astype(int) - src[inside]).mean() > 1.0  # the face changed
    assert np.abs(got.astype(int) - want.photo.rgb).max() <= 1
    assert "x-realedit-warning" not in r.headers
    r = client.get(f"/api/sessions/{s['id']}/image", params={"edit": "smile=5"})
    assert r.status_code == 200 and "smile=+5 is beyond" in r.headers["x-realedit-warning"]


def test_zero_edit_gives_the_photo_back(client, astronaut_png):
    s = ready_session(client, astronaut_png)
    src = np.asarray(Image.open(io.BytesIO(astronaut_png)).convert("RGB"))
    for params in ({"size": "full"}, {"size": "full", "edit": ["smile=0"], "keep": ["gender"]}):
        r = client.get(f"/api/sessions/{s['id']}/image", params=params)
        assert r.status_code == 200, r.text
        assert np.array_equal(decoded(r.content), src)
        assert r.headers["content-disposition"] == 'attachment; filename="photo.png"'


def test_preview_is_a_small_jpeg_of_the_same_edit(editor, astronaut_png):
    big = Image.open(io.BytesIO(astronaut_png)).resize((1024, 1024), Image.LANCZOS)
    with TestClient(create_app(editor, ServeConfig(preview_size=300))) as c:
        s = ready_session(c, png_bytes(big))
        url = f"/api/sessions/{s['id']}/image"
        before = c.get(url)
        plus = c.get(url, params={"edit": "smile=3"})
        minus = c.get(url, params={"edit": "smile=-3"})
        full = decoded(c.get(url, params={"edit": "smile=3", "size": "full"}).content)
    for r in (before, plus, minus):
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(r.content)).size == (300, 300)
    b, p, m = (decoded(r.content).astype(float) for r in (before, plus, minus))
    # (means over the whole preview: the default warp paste touches only where the edit acts)
    assert np.abs(p - b).mean() > 0.15 and np.abs(m - b).mean() > 0.15
    assert np.corrcoef((p - b).ravel(), (m - b).ravel())[0, 1] < -0.3  # opposite moves
    # The preview renders the edit at preview size: it must be the full-size edit shrunk, up
    # to the JPEG coding noise that the unedited preview shows too.
    x0, y0, x1, y1 = (round(v * 300 / 1024) for v in s["faces"][0]["box"])
    face = (slice(y0, y1), slice(x0, x1))
    src_small = downscaled(np.asarray(big), 300).astype(float)
    full_small = downscaled(full, 300).astype(float)
    noise = np.abs(b - src_small)[face].mean()
    assert np.abs(full_small - src_small)[face].mean() > 1.0  # the edit shows at 300 px
    assert np.abs(p - full_small)[face].mean() < 1.2 * noise + 0.3, noise


def test_jpeg_download_keeps_the_format_and_a_safe_name(client):
    s = ready_session(client, ASTRONAUT.read_bytes(), "../../etc/My Photo!.jpeg")
    r = client.get(f"/api/sessions/{s['id']}/image", params={"edit": "smile=2", "size": "full"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-disposition"] == 'attachment; filename="My_Photo_edited.jpeg"'
    img = Image.open(io.BytesIO(r.content))
    assert (img.format, img.size, img.mode) == ("JPEG", (512, 512), "RGB")


def test_download_names():
    assert safe_stem("../../x/évil name.png") == "vil_name"
    assert safe_stem("") == safe_stem(None) == safe_stem("....") == "photo"
    jpeg = type("P", (), {"format": "JPEG"})()
    assert download_ext("a.JPG", jpeg) == ".jpg"
    assert download_ext("a.png", jpeg) == ".jpg"  # the content decides, not the name
    assert download_ext(None, type("P", (), {"format": "WEBP"})()) == ".webp"


# ------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("case, status, pattern", [
    ("empty", 400, r"empty \(0 bytes\)"),
    ("text", 400, r"not a photo"),
    ("bomb", 400, r"refused: far too many pixels \(the server's limit is 4 megapixels"),
    ("big", 400, r"refused: the photo is 3000x2000 = 6 megapixels, and the server's limit is 4"),
    ("no_face", 422, r"no face"),
    ("too_large", 413, r"larger than the server's limit of 4 MB"),
])
def test_bad_uploads_get_one_json_error(client, case, status, pattern):
    data = {
        "empty": lambda: b"",
        "text": lambda: b"name,age\nalice,31\n" * 20,
        "bomb": lambda: png_bomb(20000, 20000, valid_data=True),
        "big": lambda: png_bytes(Image.new("L", (3000, 2000))),
        "no_face": lambda: png_bytes(landscape(480, 320)),
        "too_large": lambda: np.random.default_rng(0).bytes(5 * 2**20),
    }[case]()
    r = upload(client, data, "photo.jpg", faces="largest")  # the name says JPEG: ignored
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "kind"}
    import re
    assert re.search(pattern, body["error"]), body["error"]
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    assert_serving(client)


def test_upload_without_a_length_is_cut_at_the_limit(client):
    def body():  # a generator: sent chunked, so the server must count
        yield (b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(6):
            yield bytes(2**20)
        yield b"\r\n--b--\r\n"

    r = client.post("/api/sessions", content=body(),
                    headers={"content-type": "multipart/form-data; boundary=b"})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413 and "limit of 4 MB" in r.json()["error"]
    assert_serving(client)


def test_bad_requests_get_4xx_json(client, astronaut_png):
    s = ready_session(client, astronaut_png)
    url = f"/api/sessions/{s['id']}/image"
    cases = [
        (client.get(url, params={"edit": "beard=1"}), 422, "unknown attribute 'beard'"),
        (client.get(url, params={"edit": "smile=lots"}), 422, "not a number"),
        (client.get(url, params={"edit": "smile"}), 422, "NAME=AMOUNT"),
        (client.get(url, params={"edit": "smile=1", "keep": "smile"}), 422, "both edit and keep"),
        (client.get(url, params={"size": "huge"}), 422, "size"),
        (client.get("/api/sessions/nope/image"), 404, "no such session"),
        (client.get("/api/sessions/..%2F..%2Fetc%2Fpasswd"), 404, ""),
        (client.post(f"/api/sessions/{s['id']}/invert", json={"faces": "all"}), 409,
         "already inverted"),
        (client.get("/api/no/such/thing"), 404, ""),
    ]
    for r, status, text in cases:
        assert r.status_code == status, (r.request.url, r.text)
        assert text in r.json()["error"], r.json()
    assert_serving(client)


def test_edit_before_inversion_and_bad_face_index(client):
    r = upload(client, ASTRONAUT.read_bytes(), "a.jpg")
    sid = r.json()["id"]
    r = client.get(f"/api/sessions/{sid}/image", params={"edit": "smile=1"})
    assert r.status_code == 409 and "not inverted yet (detected)" in r.json()["error"]
    r = client.post(f"/api/sessions/{sid}/invert", json={"faces": 3})
    assert r.status_code == 400 and "only 1 usable face" in r.json()["error"]
    r = client.post(f"/api/sessions/{sid}/invert", json={"faces": "some"})
    assert r.status_code == 400 and "largest" in r.json()["error"]
    r = client.post(f"/api/sessions/{sid}/invert", json={"faces": 0})
    assert r.status_code == 202
    assert client.get(f"/api/sessions/{sid}", params={"wait": 60}).json()["state"] == "ready"
    client.delete(f"/api/sessions/{sid}")


# ------------------------------------------------------------------------------ sessions

def test_sessions_expire_with_their_files(editor, astronaut_png):
    app = create_app(editor, ServeConfig(session_ttl=600))
    store = app.state.store
    with TestClient(app) as c:
        s = ready_session(c, astronaut_png)
        folder = store.get(s["id"]).folder
        assert folder.is_dir() and folder.parent == store.root
        r = c.get(f"/api/sessions/{s['id']}/image", params={"edit": "age=1", "size": "full"})
        assert r.status_code == 200
        assert list(folder.iterdir()) == []  # the render was sent, not kept
        assert store.sweep(now=time.monotonic() + 300) == 0  # still fresh
        assert store.sweep(now=time.monotonic() + 601) == 1
        assert not folder.exists()
        assert c.get(f"/api/sessions/{s['id']}").status_code == 404
        t = ready_session(c, astronaut_png)
        assert c.delete(f"/api/sessions/{t['id']}").json() == {"deleted": t["id"]}
        assert c.get(f"/api/sessions/{t['id']}").status_code == 404
        root = store.root
    assert not root.exists()  # shutting down removes every session's files


def test_session_limit_answers_503(editor, astronaut_png):
    with TestClient(create_app(editor, ServeConfig(max_sessions=1))) as c:
        assert upload(c, astronaut_png).status_code == 201
        r = upload(c, astronaut_png)
        assert r.status_code == 503 and "already holds 1 photo" in r.json()["error"]


def test_two_clients_at_once_each_get_their_own_photo(editor, astronaut_png):
    gated = copy.copy(editor)
    gated.inverter = GatedInverter(editor.inverter)
    src = np.asarray(Image.open(io.BytesIO(astronaut_png)).convert("RGB"))
    photos = {"a": src, "b": np.ascontiguousarray(src[:, ::-1])}  # two different photos
    with TestClient(create_app(gated)) as c:
        ids, errors = {}, []

        def client_upload(key):
            try:
                data = png_bytes(Image.fromarray(photos[key]))
                r = upload(c, data, f"{key}.png", faces="largest")
                assert r.status_code == 201, r.text
                ids[key] = r.json()["id"]
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=client_upload, args=(k,)) for k in photos]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors and set(ids) == {"a", "b"}
        assert gated.inverter.started.wait(30)
        states = {k: c.get(f"/api/sessions/{ids[k]}").json() for k in ids}
        running = [k for k in ids if states[k]["state"] == "inverting"]
        waiting = [k for k in ids if states[k]["state"] == "queued"]
        assert len(running) == 1 and len(waiting) == 1, states
        assert states[running[0]]["position"] == 0 and states[waiting[0]]["position"] == 1
        assert states[waiting[0]]["ahead"] == 1
        assert c.get("/api/health").json()["queue"] == 2
        gated.inverter.gate.set()
        got = {}
        for k in ids:
            assert c.get(f"/api/sessions/{ids[k]}", params={"wait": 60}).json()["state"] == "ready"
            r = c.get(f"/api/sessions/{ids[k]}/image", params={"edit": "smile=3", "size": "full"})
            got[k] = decoded(r.content)
    for k, photo in photos.items():
        want = editor.apply(editor.invert(photo), {"smile": 3})
        assert np.abs(got[k].astype(int) - want.photo.rgb).max() <= 1, k
    assert np.abs(got["a"].astype(int) - got["b"][:, ::-1]).mean() > 0  # not the same edit


# ------------------------------------------------------------------------------ command

def test_serve_command_refuses_bad_options_in_one_line():
    from click.testing import CliRunner

    from realedit.cli import cli

    res = CliRunner().invoke(cli, ["serve", "--device", "tpu"])
    assert res.exit_code == 2 and "unknown device 'tpu'" in res.output
    assert "Traceback" not in res.output


def test_exposure_warning():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert exposure_warning(host) is None
    for host in ("0.0.0.0", "192.168.1.5", "::", "myhost.example"):
        assert "WARNING" in exposure_warning(host) and host in exposure_warning(host)


@pytest.mark.slow
def test_serve_command_starts_and_answers(tmp_path):
    import socket

    import httpx2 as httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    proc = subprocess.Popen([sys.executable, "-m", "realedit.cli", "serve", "--port", str(port),
                             "--inverter", "encoder"], stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=env)
    base, health, page, docs, spec = f"http://127.0.0.1:{port}", None, "", "", {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and health is None:
            try:
                health = httpx.get(f"{base}/api/health", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.5)
        if health is not None:
            page = httpx.get(f"{base}/").text
            docs = httpx.get(f"{base}/docs").text
            spec = httpx.get(f"{base}/openapi.json").json()
            rebound = httpx.get(f"{base}/api/health", headers={"Host": "evil.example"}).status_code
    finally:
        proc.terminate()
        err = proc.communicate(timeout=30)[1]
    assert health is not None, "the server did not answer: " + err
    assert health["model"] == "realedit-celeba64"
    assert rebound == 400  # another site's name pointed at 127.0.0.1 gets nothing
    assert '<script src="/static/app.js">' in page and "http" not in page.split("<body>")[1]
    assert "swagger" in docs.lower() and "cdn" not in docs.lower()  # docs assets served locally
    assert {"/api/sessions", "/api/sessions/{sid}/image", "/api/attributes"} <= set(spec["paths"])
    assert f"{base}/" in err and "WARNING" not in err and "Traceback" not in err


@pytest.mark.skipif(not __import__("bad_inputs.make").make.celeba_files(),
                    reason="CelebA crops (../shared) are absent")
def test_pick_one_face_or_all_in_a_group(client):
    from bad_inputs.make import CROWD, group_photo

    data = png_bytes(group_photo(CROWD[:3], cols=3))
    s = upload(client, data, "group.png").json()
    sizes = [f["size"] for f in s["faces"]]
    assert len(sizes) == 3 and sizes == sorted(sizes, reverse=True)  # index 0 = largest
    ids = {"one": s["id"], "all": upload(client, data, "group.png").json()["id"]}
    assert client.post(f"/api/sessions/{ids['one']}/invert", json={"faces": 1}).status_code == 202
    r = client.post(f"/api/sessions/{ids['all']}/invert", json={"faces": "all"})
    assert r.status_code == 202
    one = client.get(f"/api/sessions/{ids['one']}", params={"wait": 60}).json()
    every = client.get(f"/api/sessions/{ids['all']}", params={"wait": 60}).json()
    assert one["inverted"] == [1] and sorted(every["inverted"]) == [0, 1, 2]
    src = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    changed = {}
    for key, sid in ids.items():
        r = client.get(f"/api/sessions/{sid}/image", params={"edit": "smile=3", "size": "full"})
        diff = np.abs(decoded(r.content).astype(int) - src).sum(axis=2) > 0
        # which faces' boxes hold changed pixels
        boxes = [[int(v) for v in f["box"]] for f in s["faces"]]
        changed[key] = [i for i, (x0, y0, x1, y1) in enumerate(boxes) if diff[y0:y1, x0:x1].any()]
        client.delete(f"/api/sessions/{sid}")
    assert changed == {"one": [1], "all": [0, 1, 2]}


def test_a_photo_deleted_while_queued_leaves_the_queue(editor, astronaut_png):
    gated = copy.copy(editor)
    gated.inverter = GatedInverter(editor.inverter)
    with TestClient(create_app(gated)) as c:
        first = upload(c, astronaut_png, faces="largest").json()["id"]
        assert gated.inverter.started.wait(30)
        second = upload(c, astronaut_png, faces="largest").json()
        assert (second["state"], second["position"]) == ("queued", 1)
        assert c.get("/api/health").json()["queue"] == 2
        assert c.delete(f"/api/sessions/{second['id']}").status_code == 200
        assert c.get("/api/health").json()["queue"] == 1
        gated.inverter.gate.set()
        assert c.get(f"/api/sessions/{first}", params={"wait": 60}).json()["state"] == "ready"
        h = c.get("/api/health").json()
        assert (h["queue"], h["sessions"]) == (0, 1)
