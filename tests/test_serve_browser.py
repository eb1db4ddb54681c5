"""`realedit serve` in a real browser: headless Chromium (Debian's package, driven by
Playwright, which downloads nothing) goes through bad uploads -> a good upload -> sliders ->
keep -> wipe view -> download, and the downloaded photo is checked against the Editor's own
edit (same size, face changed, every pixel outside the paste mask untouched).

It also measures slider -> preview latency in the page (from the slider's input event to the
new preview decoded on screen) and prints the median and max. With REALEDIT_DEMO=1 it saves
the screenshot used in README.md to demo/serve.png.
"""
from __future__ import annotations

import copy
import io
import json
import os
import shutil
import socket
import statistics
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; "
                             ".ci/run installs it before the tests)")
pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(pip install -e '.[test]')")

from bad_inputs.make import landscape, png_bomb  # noqa: E402
from realedit.pipeline import Editor  # noqa: E402
from realedit.serve import ServeConfig, create_app  # noqa: E402
from serve_helpers import GatedInverter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "demo" / "photos" / "astronaut.jpg"
MOVES = [("smile", 1), ("smile", 2), ("smile", 3), ("age", 1), ("age", 2), ("age", -1),
         ("smile", 2.5), ("pose", 1), ("pose", 0), ("age", 1.5), ("smile", 3)]


@pytest.fixture(scope="module")
def editor():
    return Editor.from_pretrained(inverter="encoder")


@contextmanager
def running(app):
    """uvicorn serving ``app`` on a free loopback port, in a thread of this process."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert srv.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def server(editor):
    with running(create_app(editor, ServeConfig(max_pixels=4_000_000))) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def new_page(browser, url):
    ctx = browser.new_context(viewport={"width": 1280, "height": 820}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(url)
    pg.wait_for_function("window.realedit.attrs.length > 0")
    return pg


@pytest.fixture(scope="module")
def page(browser, server):
    pg = new_page(browser, server)
    yield pg
    pg.context.close()


def drop_file(page, path: Path):
    page.set_input_files("#file", str(path))


def test_bad_uploads_show_one_message_each(page, tmp_path):
    cases = {
        "empty.jpg": (b"", "empty (0 bytes)"),
        "notes.png": (b"this is text, not a photo\n" * 10, "not a photo"),
        "bomb.png": (png_bomb(20000, 20000, valid_data=True), "too many pixels"),
        "hills.png": (None, "no face"),
    }
    landscape(480, 320).save(tmp_path / "hills.png")
    for name, (data, text) in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        page.evaluate("document.getElementById('error').textContent = ''")
        drop_file(page, tmp_path / name)
        page.wait_for_function("document.getElementById('error').textContent.length > 0")
        shown = page.inner_text("#error")
        assert text in shown, (name, shown)
        assert "\n" not in shown.strip() and "Traceback" not in shown
        assert page.is_hidden("#editor")


def test_upload_sliders_download(page, editor, tmp_path, capsys):
    src_path = tmp_path / "astronaut.png"
    Image.open(ASTRONAUT).convert("RGB").save(src_path)
    drop_file(page, src_path)
    page.wait_for_selector("#editor", state="visible")
    assert page.locator("#faces-view .box.face").count() == 1  # the astronaut
    assert page.locator("#faces-view .box.skipped").count() == 1  # the mission patch
    page.wait_for_function("window.realedit.afterUrl !== null")

    settle = "!window.realedit.inflight && window.realedit.marks.length === 0"
    for name, value in MOVES:
        page.locator(f"#s-{name}").fill(str(value))
        page.wait_for_function(settle)
    page.check("#k-gender")
    assert page.locator("#s-gender").is_disabled()
    page.wait_for_function(settle)
    lat = page.evaluate("window.realedit.latencies")
    assert len(lat) == len(MOVES) + 1  # every move reached the preview

    page.check("input[name=view][value=wipe]")
    page.locator("#wipe-pos").fill("40")
    clip = page.evaluate("getComputedStyle(document.getElementById('after')).clipPath")
    assert "40%" in clip, clip
    page.check("input[name=view][value=side]")
    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("REALEDIT_DEMO"):
        shutil.copy(shot, ROOT / "demo" / "serve.png")

    with page.expect_download() as dl:
        page.click("#download")
    download = dl.value
    assert download.suggested_filename == "astronaut_edited.png"
    got = np.asarray(Image.open(download.path()).convert("RGB"))
    src = np.asarray(Image.open(src_path).convert("RGB"))
    edits = {"smile": 3.0, "age": 1.5}  # the sliders' final values; pose went back to 0
    want = editor.apply(editor.invert(src), edits, ["gender"])
    assert got.shape == src.shape
    outside = want.mask == 0
    assert outside.mean() > 0.5 and np.array_equal(got[outside], src[outside])
    inside = want.mask > 0.5
    assert np.abs(got[inside].astype(int) - src[inside]).mean() > 1.0
    assert np.abs(got.astype(int) - want.photo.rgb).max() <= 1

    page.click("#reset")
    page.wait_for_function(settle)
    assert page.input_value("#s-smile") == "0" and not page.is_checked("#k-gender")

    ms = sorted(lat)
    stats = {"moves": len(ms), "median_s": round(statistics.median(ms) / 1000, 3),
             "max_s": round(ms[-1] / 1000, 3)}
    with capsys.disabled():
        print(f"\nslider -> preview latency in Chromium ({len(ms)} moves, 512x512 photo, "
              f"embedded model): median {stats['median_s']:.3f} s, max {stats['max_s']:.3f} s")
    (tmp_path / "latency.json").write_text(json.dumps(stats))


def test_pick_a_face_in_a_group(page, tmp_path):
    from bad_inputs.make import CROWD, celeba_files, group_photo

    if not celeba_files():
        pytest.skip("CelebA crops (../shared) are absent")
    group_photo(CROWD[:3], cols=3).save(tmp_path / "group.png")
    drop_file(page, tmp_path / "group.png")
    page.wait_for_selector("#faces", state="visible")
    assert page.locator("#face-buttons button").all_inner_texts() == [
        "face 1", "face 2", "face 3", "all 3 faces"]
    assert page.is_hidden("#editor") and page.is_hidden("#progress")  # waits for the choice
    page.locator("#faces-view .box.face").nth(1).click()
    assert page.inner_text("#start") == "Edit face 2"
    assert page.locator("#faces-view .box.picked").count() == 1
    page.click("#start")
    page.wait_for_selector("#editor", state="visible")
    assert page.evaluate("window.realedit.session.inverted") == [1]


def test_a_second_user_sees_their_place_in_the_queue(browser, editor, tmp_path):
    gated = copy.copy(editor)
    gated.inverter = GatedInverter(editor.inverter)
    src = Image.open(ASTRONAUT).convert("RGB")
    src.save(tmp_path / "first.png")
    src.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "second.png")
    with running(create_app(gated)) as url:
        first, second = new_page(browser, url), new_page(browser, url)
        drop_file(first, tmp_path / "first.png")
        assert gated.inverter.started.wait(60)
        first.wait_for_function(
            "document.getElementById('status').textContent.startsWith('Inverting')")
        drop_file(second, tmp_path / "second.png")
        second.wait_for_function("document.getElementById('status').textContent.includes('queue')")
        assert second.inner_text("#status") == \
            "Waiting in the queue: position 1 (1 photo ahead of yours)"
        assert first.is_hidden("#editor") and second.is_hidden("#editor")
        gated.inverter.gate.set()
        for pg, name in ((first, "first"), (second, "second")):
            pg.wait_for_selector("#editor", state="visible")
            assert pg.evaluate("window.realedit.session.name") == name
        sid = "window.realedit.session.id"
        assert first.evaluate(sid) != second.evaluate(sid)
        for pg in (first, second):
            pg.context.close()
