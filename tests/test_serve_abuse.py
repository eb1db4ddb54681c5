"""`realedit serve` under abuse: many long polls, other web pages, odd face values, big uploads
beside small ones, a full server. Loopback only (127.0.0.1 or Starlette's in-process client),
every loop and wait bounded.

Timing bounds here are generous (the CPU is shared and loaded); the real numbers come from
`python bench/serve_soak.py`.
"""
from __future__ import annotations

import copy
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("fastapi_offline", reason="the serve extra is not installed")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")
import httpx2 as httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from realedit.align.detect import Detector  # noqa: E402
from realedit.pipeline import Editor  # noqa: E402
from realedit.serve import ServeConfig, create_app  # noqa: E402
from serve_helpers import GatedDetector, GatedInverter, live_server, png_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "demo" / "photos" / "astronaut.jpg"


@pytest.fixture(scope="module")
def editor():
    return Editor.from_pretrained(inverter="encoder")


@pytest.fixture(scope="module")
def astronaut_png() -> bytes:
    return png_bytes(Image.open(ASTRONAUT).convert("RGB"))


def upload(client, data: bytes, name: str = "photo.png", headers=None, **form):
    return client.post("/api/sessions", files={"file": (name, data, "application/octet-stream")},
                       data=form, headers=headers)


def gated(editor) -> Editor:
    ed = copy.copy(editor)
    ed.inverter = GatedInverter(editor.inverter)
    return ed


def json_error(r, status: int, kind: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error", "kind"} and "\n" not in body["error"], body
    if kind is not None:
        assert body["kind"] == kind, body
    return body


# ------------------------------------------------------------------------------ 1. long polls

@pytest.mark.slow
def test_forty_long_polls_leave_health_and_previews_answering(editor, astronaut_png):
    """40 clients long-polling a photo that is inverting filled every worker thread: another
    user's preview took 27.5 s and /api/health 44.7 s. Waiting must not hold a thread."""
    ed = gated(editor)
    ed.inverter.gate.set()
    with live_server(create_app(ed)) as base, httpx.Client(base_url=base, timeout=120) as c:
        ready = upload(c, astronaut_png, faces="largest").json()["id"]
        assert c.get(f"/api/sessions/{ready}", params={"wait": 60}).json()["state"] == "ready"
        assert c.get(f"/api/sessions/{ready}/image", params={"edit": "smile=1"}).status_code == 200
        ed.inverter.gate.clear()
        ed.inverter.started.clear()
        held = upload(c, astronaut_png, faces="largest").json()["id"]
        assert ed.inverter.started.wait(30)
        answers = []

        def poll():
            try:
                r = httpx.get(f"{base}/api/sessions/{held}", params={"wait": 45}, timeout=120)
                answers.append((r.status_code, r.json().get("state")))
            except Exception as exc:  # noqa: BLE001 - counted below
                answers.append((type(exc).__name__, None))

        polls = [threading.Thread(target=poll) for _ in range(40)]
        try:
            for t in polls:
                t.start()
            time.sleep(3)  # all 40 are waiting now
            t0 = time.perf_counter()
            health = c.get("/api/health")
            t_health = time.perf_counter() - t0
            t0 = time.perf_counter()
            preview = c.get(f"/api/sessions/{ready}/image", params={"edit": "smile=2"})
            t_preview = time.perf_counter() - t0
            waiting = health.json().get("long_polls")
        finally:
            ed.inverter.gate.set()
            for t in polls:
                t.join(120)
    assert health.status_code == 200 and preview.status_code == 200
    # 1 s on an idle machine (bench/serve_soak.py); this shared CPU gets slack, not 45 s
    assert t_health < 5 and t_preview < 8, (t_health, t_preview)
    assert waiting == 40
    assert answers == [(200, "ready")] * 40, answers


def test_too_many_long_polls_get_429_with_retry_after(editor, astronaut_png):
    ed = gated(editor)
    app = create_app(ed, ServeConfig(max_long_polls=3))
    with TestClient(app) as c:
        sid = upload(c, astronaut_png, faces="largest").json()["id"]
        assert ed.inverter.started.wait(30)
        got = []
        polls = [threading.Thread(target=lambda: got.append(
            c.get(f"/api/sessions/{sid}", params={"wait": 30}).status_code)) for _ in range(3)]
        try:
            for t in polls:
                t.start()
            deadline = time.monotonic() + 20
            while c.get("/api/health").json()["long_polls"] < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            r = c.get(f"/api/sessions/{sid}", params={"wait": 30})
            json_error(r, 429, "TooManyPolls")
            assert 1 <= int(r.headers["retry-after"]) <= 60
            assert c.get(f"/api/sessions/{sid}").status_code == 200  # no wait: always answered
        finally:
            ed.inverter.gate.set()
            for t in polls:
                t.join(60)
    assert got == [200] * 3


# ------------------------------------------------------------------------------ 7. expiry

@pytest.mark.parametrize("how", ["expired", "deleted"])
def test_a_queued_session_that_goes_during_a_long_poll_answers_404(editor, astronaut_png, how):
    """It answered 200 {state: queued, position: null} after the whole wait."""
    ed = gated(editor)
    app = create_app(ed, ServeConfig(session_ttl=600))
    with TestClient(app) as c:
        upload(c, astronaut_png, faces="largest")
        assert ed.inverter.started.wait(30)
        second = upload(c, astronaut_png, faces="largest").json()
        assert (second["state"], second["position"]) == ("queued", 1)
        got = {}

        def poll():
            t0 = time.perf_counter()
            got["r"] = c.get(f"/api/sessions/{second['id']}", params={"wait": 30})
            got["s"] = time.perf_counter() - t0

        t = threading.Thread(target=poll)
        try:
            t.start()
            time.sleep(1)
            if how == "expired":  # the inverting one is in use; the queued one expires
                assert app.state.store.sweep(now=time.monotonic() + 601) == 1
            else:
                assert c.delete(f"/api/sessions/{second['id']}").status_code == 200
            t.join(40)
        finally:
            ed.inverter.gate.set()
        assert c.get("/api/health").json()["queue"] <= 1
    json_error(got["r"], 404)
    assert got["s"] < 15, got["s"]


# ------------------------------------------------------------------------------ 4. other sites

def test_other_web_pages_cannot_write(editor, astronaut_png):
    """16 cross-origin form uploads from http://evil.example got 201 and filled every slot."""
    app = create_app(editor, ServeConfig(max_sessions=16))
    evil = {"Origin": "http://evil.example"}
    with TestClient(app) as c:
        for headers in (evil, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                        {"Origin": "http://testserver.evil.example"},
                        {"Origin": "http://testserver:8080"}):
            for _ in range(2):
                json_error(upload(c, astronaut_png, headers=headers), 403, "cross_origin")
        assert len(app.state.store) == 0
        assert c.get("/api/health", headers=evil).status_code == 200  # reading is not writing
        own = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
        sid = upload(c, astronaut_png, headers=own).json()["id"]
        assert upload(c, astronaut_png).status_code == 201  # no Origin: curl, scripts
        json_error(c.post(f"/api/sessions/{sid}/invert", json={"faces": 0}, headers=evil), 403)
        json_error(c.delete(f"/api/sessions/{sid}", headers=evil), 403)
        assert c.get(f"/api/sessions/{sid}").json()["state"] == "detected"
        assert c.delete(f"/api/sessions/{sid}", headers=own).status_code == 200


def test_a_remote_client_gets_a_share_of_the_slots(editor, astronaut_png):
    app = create_app(editor, ServeConfig(max_sessions=4))
    with TestClient(app, client=("203.0.113.7", 40000)) as far:
        assert [upload(far, astronaut_png).status_code for _ in range(2)] == [201, 201]
        r = upload(far, astronaut_png)
        assert "this address already holds 2" in json_error(r, 503, "Busy")["error"]
        assert "retry-after" in r.headers
        near = TestClient(app, client=("127.0.0.1", 40001))  # this machine: no share
        assert [upload(near, astronaut_png).status_code for _ in range(2)] == [201, 201]
        json_error(upload(near, astronaut_png), 503, "Busy")  # the store is full now


def test_the_host_refusal_is_json(editor):
    app = create_app(editor, allowed_hosts=["127.0.0.1", "localhost", "::1"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/health", headers={"Host": "localhost:8000"}).status_code == 200
        assert c.get("/api/health", headers={"Host": "[::1]:8000"}).status_code == 200
        for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "[::2]:80",
                     "127.0.0.1:x"):
            body = json_error(c.get("/api/health", headers={"Host": host}), 400, "host")
            assert "host" in body["error"].lower()


# ------------------------------------------------------------------------------ 5. face values

@pytest.mark.parametrize("value", ["²", "9" * 5000, "٣", "1e3"])
def test_odd_face_values_get_a_400(editor, astronaut_png, value):
    """`faces=²` or a 5000-digit value gave HTTP 500 on upload and on /invert."""
    with TestClient(create_app(editor)) as c:
        assert "face" in json_error(upload(c, astronaut_png, faces=value), 400)["error"]
        assert len(c.app.state.store) == 0
        sid = upload(c, astronaut_png).json()["id"]
        assert "face" in json_error(c.post(f"/api/sessions/{sid}/invert",
                                           json={"faces": value}), 400)["error"]
        r = c.post(f"/api/sessions/{sid}/invert", content='{"faces": ' + "9" * 5000 + "}",
                   headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500 and set(r.json()) == {"error", "kind"}, r.text
        assert c.get(f"/api/sessions/{sid}").json()["state"] == "detected"


# ------------------------------------------------------------------------------ 9. big uploads

def test_a_big_upload_does_not_hold_up_a_small_one(editor, astronaut_png):
    """A 40 MP PNG held the face-detection lock for 37 s; a 1024 px upload waited 37.4 s.
    Here the big photo's detection is held at a gate: the small upload must not wait for it."""
    ed = copy.copy(editor)
    ed.detector = GatedDetector(Detector(), over_pixels=1_000_000)
    big = Image.open(ASTRONAUT).convert("RGB").resize((2200, 2200), Image.BILINEAR)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    done = {}
    with TestClient(create_app(ed, ServeConfig(big_photo_pixels=1_000_000))) as c:
        def send(key, data):
            t0 = time.perf_counter()
            done[key] = (upload(c, data, f"{key}.jpg").status_code, time.perf_counter() - t0)

        first = threading.Thread(target=send, args=("big", buf.getvalue()))
        second = threading.Thread(target=send, args=("small", astronaut_png))
        try:
            first.start()
            assert ed.detector.held.wait(30), "the big photo never reached the detector"
            second.start()
            second.join(30)
            small_done = "small" in done
        finally:
            ed.detector.gate.set()
            first.join(60)
            second.join(60)
    assert small_done, "the small upload waited for the big one's detection"
    assert done["small"][0] == 201 and done["small"][1] < 20, done
    assert done["big"][0] in (201, 422), done


# ------------------------------------------------------------------------------ cosmetic

def test_a_full_server_refuses_before_decoding_and_says_when_to_retry(editor, astronaut_png):
    ed = copy.copy(editor)
    ed.detector = GatedDetector(Detector(), over_pixels=None)  # counts, never holds
    ed.inverter = GatedInverter(editor.inverter)
    with TestClient(create_app(ed, ServeConfig(max_sessions=3, max_waiting=1))) as c:
        upload(c, astronaut_png, faces="largest")          # inverting (held at the gate)
        assert ed.inverter.started.wait(30)
        upload(c, astronaut_png, faces="largest")          # queued: the queue is now full
        calls = ed.detector.calls
        r = upload(c, astronaut_png, faces="largest")
        assert "waiting" in json_error(r, 503, "Busy")["error"]
        assert 1 <= int(r.headers["retry-after"]) <= 3600
        assert ed.detector.calls == calls, "refused only after detecting the photo"
        assert len(c.app.state.store) == 2
        assert upload(c, astronaut_png).status_code == 201  # no inversion asked: a slot is free
        calls = ed.detector.calls
        for data in (astronaut_png, b"not even a photo"):  # the store is full: judged first
            r = upload(c, data)
            assert "already holds 3" in json_error(r, 503, "Busy")["error"]
            assert 1 <= int(r.headers["retry-after"]) <= 3600
        assert ed.detector.calls == calls
        ed.inverter.gate.set()


def test_uploads_in_flight_count_against_the_limit(editor, astronaut_png):
    """Two uploads at once on a server with one free slot: one gets it, the other a 503 at
    once (not after its own decoding and detection)."""
    ed = copy.copy(editor)
    ed.detector = GatedDetector(Detector(), over_pixels=0, detect_held=True)  # holds all
    got = {}
    with TestClient(create_app(ed, ServeConfig(max_sessions=1))) as c:
        t = threading.Thread(target=lambda: got.setdefault("first", upload(c, astronaut_png)))
        try:
            t.start()
            assert ed.detector.held.wait(30)
            r = upload(c, astronaut_png)
        finally:
            ed.detector.gate.set()
            t.join(60)
    json_error(r, 503, "Busy")
    assert got["first"].status_code == 201
    assert np.isfinite(float(r.headers["retry-after"]))
