"""`realedit batch`: inputs and outputs of a job, the ledger's resume rules, and whole jobs on
the local engine and on a Ray cluster the tests start themselves (same outputs as local; a
worker killed mid-job; the driver killed and the command rerun).

Photos are made from demo/photos/astronaut.jpg (public domain): scaled, flipped and recoloured
copies, plus broken files and photos without a face, so every job mixes good and bad photos.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from realedit.batch import JobSpec, read_ledger, run_job
from realedit.batch.job import Ledger, Record, file_digest, list_inputs, plan_tasks
from realedit.errors import OutputError, UsageError

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "demo" / "photos" / "astronaut.jpg"
FAST = dict(inverter="encoder")
SPEC = JobSpec(edits={"smile": 2.0}, keep=("gender",), **FAST)


def make_photos(folder: Path, good: int, bad: int) -> tuple[list[str], list[str]]:
    """``good`` photos with one face and ``bad`` ones that must fail; returns their keys."""
    base = Image.open(ASTRONAUT).convert("RGB")
    rng = np.random.default_rng(0)
    good_keys, bad_keys = [], []
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    for i in range(good):
        side = int(rng.integers(200, 300))
        img = base.resize((side, side), Image.BICUBIC)
        if i % 2:
            img = ImageOps.mirror(img)
        gain = 1 + 0.1 * rng.standard_normal(3)
        arr = np.clip(np.asarray(img, np.float32) * gain, 0, 255).astype(np.uint8)
        sub = "a" if i % 3 else "b"
        name = f"{sub}/p{i:02d}.png"
        Image.fromarray(arr).save(folder / name)
        good_keys.append(name)
    kinds = ["empty", "text", "noface", "truncated"]
    for i in range(bad):
        kind = kinds[i % len(kinds)]
        name = f"b/bad{i:02d}_{kind}." + ("png" if kind == "noface" else "jpg")
        p = folder / name
        if kind == "empty":
            p.write_bytes(b"")
        elif kind == "text":
            p.write_text("not a photo\n")
        elif kind == "noface":
            g = np.linspace(0, 255, 240, dtype=np.float32)
            Image.fromarray(np.dstack([np.add.outer(g, g) / 2] * 3).astype(np.uint8)).save(p)
        else:
            buf = (folder / "a" / "p01.png")
            Image.open(buf).save(p, quality=90)
            p.write_bytes(p.read_bytes()[: 600])
        bad_keys.append(name)
    return sorted(good_keys), sorted(bad_keys)


@pytest.fixture(scope="module")
def mixed60(tmp_path_factory):
    d = tmp_path_factory.mktemp("mixed60")
    good, bad = make_photos(d, 48, 12)
    return d, good, bad


@pytest.fixture(scope="module")
def mixed12(tmp_path_factory):
    d = tmp_path_factory.mktemp("mixed12")
    good, bad = make_photos(d, 9, 3)
    return d, good, bad


def photo_records(out: Path) -> list[dict]:
    return [r for r in read_ledger(out / "manifest.jsonl") if r.get("type") == "photo"]


def check_complete(out: Path, good, bad, records=None):
    """Every good photo: exactly one ok record, valid outputs; every bad one failed."""
    records = records if records is not None else photo_records(out)
    ok = [r["key"] for r in records if r["status"] == "ok"]
    assert sorted(ok) == sorted(good), "each good photo edited exactly once"
    failed = {r["key"] for r in records if r["status"] == "failed"}
    assert failed == set(bad)
    for r in records:
        if r["status"] == "ok":
            for o in r["outputs"]:
                path = out / o["path"]  # relative to the job folder (absolute in old ledgers)
                assert file_digest(path)["sha256"] == o["sha256"]
                assert Image.open(path).size == Image.open(r["src"]).size
    assert not list(out.rglob(".*.tmp")), "no partial file left"


# ---------------------------------------------------------------------------- pure parts

def test_inputs_from_folder_glob_and_lists(tmp_path):
    (tmp_path / "x" / "y").mkdir(parents=True)
    for n in ("x/1.jpg", "x/y/2.png", "x/.hidden/3.jpg", "x/notes.txt"):
        p = tmp_path / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"1")
    got = list_inputs([str(tmp_path / "x")])
    assert [p.relative_to(tmp_path).as_posix() for p in got] == ["x/1.jpg", "x/y/2.png"]
    assert list_inputs([str(tmp_path / "x" / "*.jpg")]) == [tmp_path / "x" / "1.jpg"]
    (tmp_path / "list.txt").write_text("# photos\nx/1.jpg\n\nx/y/2.png\nx/1.jpg\n")
    assert list_inputs([str(tmp_path / "list.txt")]) == [tmp_path / "x/1.jpg", tmp_path / "x/y/2.png"]
    (tmp_path / "list.csv").write_text("path,label\nx/y/2.png,1\n")
    assert list_inputs([str(tmp_path / "list.csv")]) == [tmp_path / "x/y/2.png"]
    with pytest.raises(UsageError, match="no such file"):
        list_inputs([str(tmp_path / "missing")])


def test_outputs_mirror_folders_and_never_land_on_inputs(tmp_path):
    a, b = tmp_path / "in" / "a" / "x.jpg", tmp_path / "in" / "b" / "x.jpg"
    tasks = plan_tasks([a, b], tmp_path / "out", compare=True)
    assert [t.key for t in tasks] == ["a/x.jpg", "b/x.jpg"]
    assert tasks[0].outputs == (str(tmp_path / "out/a/x_edited.jpg"), str(tmp_path / "out/a/x_compare.jpg"))
    assert len({o for t in tasks for o in t.outputs}) == 4
    gif = plan_tasks([tmp_path / "in" / "y.gif"], tmp_path / "out", compare=True)[0]
    assert gif.outputs == (str(tmp_path / "out/y_edited.gif"), str(tmp_path / "out/y_compare.png"))
    clash = tmp_path / "in" / "x_edited.jpg"
    with pytest.raises(OutputError, match="overwrite an input"):
        plan_tasks([tmp_path / "in" / "x.jpg", clash], tmp_path / "in")


def _ok(tmp_path, key, content=b"abc"):
    p = tmp_path / "out" / f"{Path(key).stem}_edited.png"  # where plan_tasks puts it
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(content)
    return Record(key, f"/src/{key}", "ok", outputs=[file_digest(p)])


def test_ledger_resume_rules(tmp_path):
    out = tmp_path / "out"
    tasks = plan_tasks([tmp_path / f"in/{k}.png" for k in "abcd"], out)
    with Ledger(out, SPEC, 4) as led:
        assert led.pending(tasks)[0] == tasks
        led.record(_ok(tmp_path, "a.png"))
        led.record(_ok(tmp_path, "b.png"))
        led.record(Record("c.png", "/src/c.png", "failed", error="no face", exit_code=4))
    # tamper with b's output: it must be redone
    (out / "b_edited.png").write_bytes(b"abX")
    with open(out / "manifest.jsonl", "a") as fh:
        fh.write('{"type": "photo", "key": "d.p')           # a torn last line is ignored
    with Ledger(out, SPEC, 4) as led:
        todo, done, skipped = led.pending(tasks)
        assert ([t.key for t in todo], done, skipped) == (["b.png", "d.png"], 1, 1)
        todo, _, _ = led.pending(tasks, retry_failed=True)
        assert [t.key for t in todo] == ["b.png", "c.png", "d.png"]
        with pytest.raises(UsageError, match="another batch job"):
            Ledger(out, SPEC, 4).open()
    other = JobSpec(edits={"smile": -2.0}, **FAST)
    with pytest.raises(UsageError, match="other settings"):
        Ledger(out, other, 4).open()
    # how a job runs (device, threads) is not part of what it makes
    with Ledger(out, JobSpec(edits={"smile": 2.0}, keep=("gender",), device="cuda", **FAST), 4):
        pass


# ---------------------------------------------------------------------------- local engine

def test_local_job_records_every_photo_and_reruns_do_nothing_twice(mixed12, tmp_path):
    src, good, bad = mixed12
    out = tmp_path / "out"
    s = run_job([str(src)], out, SPEC, batch=4, cpu_workers=0)
    assert (s.done, s.failed, s.already_done) == (len(good), len(bad), 0)
    check_complete(out, good, bad)
    errors = {r["key"]: r for r in photo_records(out) if r["status"] == "failed"}
    assert all(r["error"] and r["exit_code"] in (3, 4) for r in errors.values())
    # the edit changed the face and nothing far from it
    rec = next(r for r in photo_records(out) if r["status"] == "ok")
    before = np.asarray(Image.open(rec["src"]).convert("RGB"), np.int16)
    after = np.asarray(Image.open(out / rec["outputs"][0]["path"]).convert("RGB"), np.int16)
    diff = np.abs(after - before).max(axis=2)
    assert diff.max() > 10 and diff[:10].max() == 0 and diff[:, :10].max() == 0
    n_lines = len(photo_records(out))
    s = run_job([str(src)], out, SPEC, batch=4, cpu_workers=0)
    assert (s.done, s.failed, s.already_done, s.skipped_failed) == (0, 0, len(good), len(bad))
    s = run_job([str(src)], out, SPEC, batch=4, cpu_workers=0, retry_failed=True)
    assert (s.done, s.failed) == (0, len(bad))
    assert len(photo_records(out)) == n_lines + len(bad)


@pytest.mark.slow
def test_cli_batch_exit_codes_and_progress(mixed12, tmp_path):
    from realedit.cli import cli

    src, good, bad = mixed12
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["batch", str(src / "a"), "--attr", "smile=+2", "-o", str(out),
                                   "--inverter", "encoder", "--cpu-workers", "0"])
    assert res.exit_code == 0, res.output
    assert "done:" in res.output and "Traceback" not in res.output
    prog = [r for r in read_ledger(out / "manifest.jsonl") if r.get("type") == "progress"]
    assert prog[-1]["remaining"] == 0 and prog[-1]["done"] == len([g for g in good if g.startswith("a/")])
    res = CliRunner().invoke(cli, ["batch", str(src), "--attr", "smile=+2", "-o", str(tmp_path / "o2"),
                                   "--inverter", "encoder", "--cpu-workers", "0"])
    assert res.exit_code == 1 and "error:" in res.output
    res = CliRunner().invoke(cli, ["batch", str(src), "--attr", "smile=+2", "-o", str(out),
                                   "--inverter", "encoder", "--engine", "spark"])
    assert res.exit_code == 2
    res = CliRunner().invoke(cli, ["batch", str(src), "--attr", "smiel=+2", "-o", str(tmp_path / "o3"),
                                   "--inverter", "encoder"])
    assert res.exit_code != 0 and "smiel" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o3").exists()


# ---------------------------------------------------------------------------- abuse and kills

def _proc_stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) of a live process from /proc, else None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            rest = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return rest[0], int(rest[1]), rest[19]


def _descendants(root: int) -> dict[int, str]:
    """Every process below ``root``: pid -> start time (so a reused pid is not mistaken)."""
    parents: dict[int, list[int]] = {}
    starts = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _proc_stat(int(name))) is not None:
            parents.setdefault(st[1], []).append(int(name))
            starts[int(name)] = st[2]
    out, todo = {}, [root]
    while todo:
        for kid in parents.get(todo.pop(), []):
            out[kid] = starts[kid]
            todo.append(kid)
    return out


def _alive(procs: dict[int, str]) -> list[int]:
    """Which of ``procs`` still run (a zombie nobody reaps has ended)."""
    alive = []
    for pid, start in procs.items():
        st = _proc_stat(pid)
        if st is not None and st[2] == start and st[0] not in "ZX":
            alive.append(pid)
    return alive


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree in /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_local_driver_leaves_no_process_behind(mixed12, tmp_path, sig):
    """The CPU-stage worker (and multiprocessing's resource_tracker) outlived a killed driver
    by 15 minutes and more, ~430 MB each time. The local engine now prepares photos in threads
    of the driver (realedit.stream): mid-job it runs no process of its own, and within 10 s of
    the kill nothing it started may be left."""
    src, good, _ = mixed12
    out = tmp_path / "out"
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "realedit.cli", "batch", str(src), "--attr",
                             "smile=+2", "-o", str(out), "--inverter", "encoder", "--batch", "2",
                             "--cpu-workers", "2", "--threads", "1"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # mid-job: a photo is recorded, the CPU stage's threads are at work
        assert _wait_for(lambda: _n_ok(out) >= 1, 300, proc), "the job made no progress"
        kids = _descendants(proc.pid)
        assert not _alive(kids), f"the local engine started processes: {kids}"
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(kids) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _alive(kids)
    finally:
        proc.kill()
        proc.wait()
    for pid in left:  # clean up after a failure: never leave them running
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, f"still running 10 s after {sig.name} of the driver: {left}"
    assert _n_ok(out) < len(good), "the job had finished before the kill; nothing was tested"


@pytest.mark.slow
def test_run_job_from_a_plain_script(tmp_path):
    """run_job with the local engine, called at the top of a script without an ``if __name__ ==
    "__main__"`` guard: worker processes started by spawn imported the script again and the job
    failed with BrokenProcessPool. It must finish, each photo judged on its own."""
    src = tmp_path / "in"
    good, bad = make_photos(src, 2, 1)
    script = tmp_path / "job.py"
    script.write_text(
        "from realedit.batch import JobSpec, run_job\n"
        f"s = run_job([{str(src)!r}], {str(tmp_path / 'out')!r}, "
        "JobSpec(edits={'smile': 2.0}, inverter='encoder'), batch=2, cpu_workers=2)\n"
        "print('done', s.done, 'failed', s.failed)\n")
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"done {len(good)} failed {len(bad)}" in p.stdout, p.stdout + p.stderr[-2000:]
    assert _n_ok(tmp_path / "out") == len(good)


def _tiny_job(folder: Path, good: int, bad: int) -> tuple[Path, list[str], list[str]]:
    keys = make_photos(folder, good, bad)
    return folder, *keys


def test_a_torn_last_ledger_line_is_repaired_and_said(tmp_path):
    """A crash cut the last line in half; the rerun's next line was glued to the fragment and
    lost (a failed photo had no line at all, and nothing was said)."""
    src, good, bad = _tiny_job(tmp_path / "in", 2, 2)
    out = tmp_path / "out"
    run_job([str(src)], out, SPEC, batch=4, cpu_workers=0)
    manifest = out / "manifest.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    last_photo = max(i for i, ln in enumerate(lines) if b'"type": "photo"' in ln)
    torn_key = json.loads(lines[last_photo])["key"]
    # the crash: that photo's line half written, nothing after it
    manifest.write_bytes(b"".join(lines[:last_photo]) + lines[last_photo][:40])
    said = []
    s = run_job([str(src)], out, SPEC, batch=4, cpu_workers=0, on_warning=said.append)
    assert (s.done, s.failed, s.already_done, s.skipped_failed) == (1, 0, 1, len(bad))
    assert len(said) == 1 and "torn" in said[0] and "manifest.jsonl" in said[0], said
    recs = photo_records(out)
    assert sorted({r["key"] for r in recs}) == sorted(good + bad), "every photo has a line"
    assert [r["key"] for r in recs].count(torn_key) == 1
    check_complete(out, good, bad, recs)
    raw = manifest.read_bytes()
    assert raw.endswith(b"\n") and all(json.loads(ln) for ln in raw.splitlines())
    # a line whole but for its newline is kept (and the newline added), not dropped
    manifest.write_bytes(raw[:-1])
    said.clear()
    s = run_job([str(src)], out, SPEC, batch=4, cpu_workers=0, on_warning=said.append)
    assert (s.done, s.failed) == (0, 0) and len(said) == 1
    assert manifest.read_bytes().endswith(b"\n") and all(
        json.loads(ln) for ln in manifest.read_bytes().splitlines())


@pytest.mark.slow
def test_a_copied_job_folder_checks_its_own_outputs(tmp_path):
    """`cp -a k1 k7; rm k7/x_edited.jpg`: the rerun on k7 checked k1's files by their absolute
    paths, said everything was done, and never made the missing output."""
    src, good, _ = _tiny_job(tmp_path / "in", 3, 0)
    k1, k7 = tmp_path / "k1", tmp_path / "k7"
    run_job([str(src)], k1, SPEC, batch=4, cpu_workers=0)
    for r in photo_records(k1):
        for o in r["outputs"]:
            assert not Path(o["path"]).is_absolute(), o  # relative to the job folder
    shutil.copytree(k1, k7)
    gone = k7 / Path(good[1]).with_suffix("").as_posix()
    gone = gone.parent / f"{gone.name}_edited.png"
    kept = np.asarray(Image.open(k1 / gone.relative_to(k7)), np.int16)
    gone.unlink()
    s = run_job([str(src)], k7, SPEC, batch=4, cpu_workers=0)
    assert (s.done, s.already_done) == (1, 2)
    # the same edit again (inverted alone now, not in a batch of 3: float rounding may differ)
    assert np.abs(np.asarray(Image.open(gone), np.int16) - kept).max() <= 2
    check_complete(k7, good, [], list({r["key"]: r for r in photo_records(k7)}.values()))
    # an old ledger (absolute paths, into k1) copied to k8 is still read, and k8's files judged
    k8 = tmp_path / "k8"
    shutil.copytree(k1, k8)
    old = []
    for ln in (k8 / "manifest.jsonl").read_text().splitlines():
        r = json.loads(ln)
        for o in r.get("outputs", ()):
            o["path"] = str(k1 / o["path"])
        old.append(json.dumps(r))
    (k8 / "manifest.jsonl").write_text("\n".join(old) + "\n")
    (k8 / gone.relative_to(k7)).unlink()
    s = run_job([str(src)], k8, SPEC, batch=4, cpu_workers=0)
    assert (s.done, s.already_done) == (1, 2)
    s = run_job([str(src)], k1, SPEC, batch=4, cpu_workers=0)  # the original: all still there
    assert (s.done, s.already_done) == (0, 3)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["file_in_the_way", "read_only"])
def test_an_unwritable_output_stops_the_job_and_a_plain_rerun_redoes_it(tmp_path, how):
    """A folder that cannot be written fails every photo that goes there: the job stops at the
    first (no more photos inverted for nothing), and once the folder is fixed a plain rerun
    redoes those photos (but not the broken inputs)."""
    if how == "read_only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    src, good, bad = _tiny_job(tmp_path / "in", 6, 2)
    out = tmp_path / "out"
    out.mkdir()
    blocked = out / "a"  # the first photos (keys sorted) go to out/a
    if how == "file_in_the_way":
        blocked.write_text("not a folder")
    else:
        blocked.mkdir()
        blocked.chmod(0o555)
    with pytest.raises(OutputError, match="stopped") as err:
        run_job([str(src)], out, SPEC, batch=2, cpu_workers=0)
    assert str(blocked) in str(err.value)
    recs = photo_records(out)
    assert 1 <= len(recs) <= 2, recs  # the first batch only
    assert all(r["status"] == "failed" and r["exit_code"] == 7 for r in recs)
    if how == "file_in_the_way":
        blocked.unlink()
    else:
        blocked.chmod(0o755)
    s = run_job([str(src)], out, SPEC, batch=2, cpu_workers=0)
    assert s.done == len(good) and s.failed == len(bad) and s.skipped_failed == 0
    check_complete(out, good, bad, [r for r in photo_records(out)[len(recs):]])
    s = run_job([str(src)], out, SPEC, batch=2, cpu_workers=0)
    assert (s.done, s.failed, s.already_done, s.skipped_failed) == (0, 0, len(good), len(bad))


@pytest.mark.parametrize("value", ["²", "9" * 5000, "-1", "1.5", "٣"])
def test_bad_face_selection_is_a_usage_error(tmp_path, value):
    from realedit.align.select import parse_policy
    from realedit.cli import cli

    with pytest.raises(UsageError):
        parse_policy(value)
    for cmd in (["batch", str(tmp_path), "--attr", "smile=1", "-o", str(tmp_path / "x")],
                ["edit", str(ASTRONAUT), "--attr", "smile=1", "-o", str(tmp_path / "y")]):
        res = CliRunner().invoke(cli, [*cmd, "--faces", value])
        assert res.exit_code == 2, (res.output, res.exception)
        assert "Traceback" not in res.output and "face" in res.output
        assert len(res.output.strip().splitlines()) == 1 and len(res.output) < 300, res.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert parse_policy("12") == 12 and parse_policy(" all ") == "all"


# ---------------------------------------------------------------------------- Ray

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'realedit[cluster]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A one-node Ray cluster on 127.0.0.1 with 2 CPUs, started and stopped by the test.

    Nothing of the machine's own Ray set-up is used: HOME is a fresh folder (no ~/.ray) and the
    cluster's auth token is made here, in the test's folder, as `ray start` on a new machine
    would need it (Ray refuses token mode without one)."""
    import secrets

    port = _free_port()
    tmp = tmp_path_factory.mktemp("ray")
    home = tmp / "home"
    home.mkdir()
    token = tmp / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    # Ray's single-node switch keeps every socket on 127.0.0.1 (otherwise it binds the
    # machine's interface address); token auth as `ray start` sets it up, for the CLI too.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), HOME=str(home))
    env.pop("RAY_AUTH_TOKEN", None)
    ray_bin = [sys.executable, "-m", "ray.scripts.scripts"]
    started = subprocess.run([*ray_bin, "start", "--head", "--port", str(port), "--num-cpus", "2",
                              "--include-dashboard", "false", "--disable-usage-stats",
                              "--object-store-memory", str(300 * 2**20), "--temp-dir", str(tmp)],
                             env=env, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, (started.stdout + started.stderr)[-3000:]
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([*ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)


def batch_cmd(src, out, address, *extra):
    return [sys.executable, "-m", "realedit.cli", "batch", str(src), "--attr", "smile=+2",
            "--keep", "gender", "-o", str(out), "--inverter", "encoder", "--engine", "ray",
            "--address", address, "--threads", "1", *extra]


@pytest.mark.slow
def test_ray_job_makes_the_same_files_as_the_local_engine(mixed60, ray_cluster, tmp_path):
    src, good, bad = mixed60
    address, env = ray_cluster
    local, remote = tmp_path / "local", tmp_path / "ray"
    t0 = time.perf_counter()
    run_job([str(src)], local, SPEC, batch=8, cpu_workers=0)
    t_local = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = subprocess.run(batch_cmd(src, remote, address, "--workers", "1"), env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=900)
    t_ray = time.perf_counter() - t0
    assert res.returncode == 1, res.stderr[-2000:]       # the bad photos failed, each alone
    assert "Traceback" not in res.stderr
    check_complete(remote, good, bad)
    check_complete(local, good, bad)
    for key in good:
        stem = Path(key).with_suffix("").as_posix()
        a = np.asarray(Image.open(local / f"{stem}_edited.png"), np.int16)
        b = np.asarray(Image.open(remote / f"{stem}_edited.png"), np.int16)
        # same code, other processes and thread counts: float sums may round differently
        assert np.abs(a - b).max() <= 2, key
    print(f"\n60 photos: local {t_local:.1f} s, ray (1 worker, incl. start) {t_ray:.1f} s")


@pytest.mark.slow
def test_ray_and_local_are_bit_identical_with_fixed_threads_and_batches(mixed12, ray_cluster,
                                                                        tmp_path):
    """README's promise for the default (optimising) inverter: the same thread count and the
    same batches give the same files, bit for bit, whichever engine runs them. (With torch's or
    realedit's own thread choice, or other batches, the optimisation ends elsewhere: up to ~100
    levels at a few edges; bench/reproducibility.py.)"""
    src, good, bad = mixed12
    address, env = ray_cluster
    local, remote = tmp_path / "local", tmp_path / "ray"
    spec = JobSpec(edits={"smile": 2.0}, keep=("gender",), inverter="hybrid", steps=20, threads=1)
    run_job([str(src)], local, spec, batch=1, cpu_workers=0)
    cmd = [sys.executable, "-m", "realedit.cli", "batch", str(src), "--attr", "smile=+2",
           "--keep", "gender", "-o", str(remote), "--inverter", "hybrid", "--steps", "20",
           "--engine", "ray", "--address", address, "--threads", "1", "--batch", "1"]
    res = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert res.returncode == 1, res.stderr[-2000:]       # the bad photos failed, each alone
    check_complete(local, good, bad)
    check_complete(remote, good, bad)
    for key in good:
        stem = Path(key).with_suffix("").as_posix()
        assert ((local / f"{stem}_edited.png").read_bytes()
                == (remote / f"{stem}_edited.png").read_bytes()), key


@pytest.mark.slow
def test_ray_refuses_workers_that_leave_no_cpu_for_the_cpu_stage(mixed12, ray_cluster, tmp_path):
    src, _, _ = mixed12
    address, env = ray_cluster
    res = subprocess.run(batch_cmd(src, tmp_path / "out", address, "--workers", "2"), env=env,
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 2 and "lower --workers" in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists(), "a job that never started leaves no folder"


def _wait_for(pred, timeout, proc):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def _n_ok(out):
    path = out / "manifest.jsonl"
    return sum(r["status"] == "ok" for r in photo_records(out)) if path.exists() else 0


@pytest.mark.slow
def test_killed_ray_worker_loses_nothing_and_duplicates_nothing(mixed12, ray_cluster, tmp_path):
    src, good, bad = mixed12
    address, env = ray_cluster
    out = tmp_path / "out"
    proc = subprocess.Popen(batch_cmd(src, out, address, "--batch", "2"), env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: _n_ok(out) >= 2, 900, proc), "job made no progress"
        victim = next(r for r in photo_records(out) if r["status"] == "ok")["worker"]
        pid = int(victim.rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 1, err[-2000:]
    recs = photo_records(out)
    check_complete(out, good, bad, recs)
    workers = {r["worker"] for r in recs if r["status"] == "ok"}
    assert victim in workers and len(workers) >= 2, "the worker was restarted and went on"


@pytest.mark.slow
def test_killed_driver_then_rerun_finishes_the_job(mixed12, ray_cluster, tmp_path):
    src, good, bad = mixed12
    address, env = ray_cluster
    out = tmp_path / "out"
    proc = subprocess.Popen(batch_cmd(src, out, address, "--batch", "2"), env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: _n_ok(out) >= 3, 900, proc), "job made no progress"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    first = photo_records(out)
    done_first = {r["key"] for r in first if r["status"] == "ok"}
    assert 3 <= len(done_first) < len(good)
    res = subprocess.run(batch_cmd(src, out, address), env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 1, res.stderr[-2000:]
    second = photo_records(out)[len(first):]
    assert not done_first & {r["key"] for r in second}, "nothing done twice"
    check_complete(out, good, bad, first + second)


@pytest.mark.slow
def test_ray_without_address_starts_its_own_cluster_on_a_machine_that_never_ran_ray(tmp_path):
    """A new user's `--engine ray` with no --address: no ~/.ray, no token, no RAY_* settings.
    Ray starts a local cluster (and makes its own token under the fresh HOME)."""
    src = tmp_path / "in"
    good, _ = make_photos(src, 2, 0)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "realedit.cli", "batch", str(src), "--attr", "smile=+2",
           "-o", str(out), "--inverter", "encoder", "--engine", "ray", "--threads", "1"]
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert "Traceback" not in res.stderr
    check_complete(out, good, [])
