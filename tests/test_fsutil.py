"""atomic_write: a target appears complete or not at all, with the mode an ordinary file gets."""
import os
import stat
import threading

import pytest

from realedit.fsutil import atomic_copy, atomic_write, atomic_write_bytes, atomic_write_text


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_writes_bytes_and_text_and_replaces(tmp_path):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new"
    t = tmp_path / "a.txt"
    atomic_write_text(t, "line\nzwei \u00fc\n")
    assert t.read_bytes() == "line\nzwei \u00fc\n".encode()  # no newline translation, UTF-8
    c = tmp_path / "c.bin"
    atomic_copy(p, c)
    assert c.read_bytes() == b"new"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.bin", "a.txt", "c.bin"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "keep.json"
    p.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(p, "w") as fh:
            fh.write("half")
            raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["keep.json"]
    # a missing folder is an OSError, and nothing is created
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "no" / "x", b"1")
    assert not (tmp_path / "no").exists()
    with pytest.raises(ValueError):
        with atomic_write(p, "a"):
            pass


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_files_get_0666_minus_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "m", b"x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "m") == 0o666 & ~umask


def test_long_names_and_concurrent_writers(tmp_path):
    # a 250-byte name is legal; the temporary's name must stay under the 255-byte limit too
    long = tmp_path / ("n" * 250)
    atomic_write_bytes(long, b"ok")
    assert long.read_bytes() == b"ok"
    # writers into one folder never share a temporary: each result is one writer's whole data
    target = tmp_path / "shared.bin"
    errors = []

    def write(k):
        try:
            for _ in range(20):
                atomic_write_bytes(target, bytes([k]) * 4096)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    data = target.read_bytes()
    assert len(data) == 4096 and len(set(data)) == 1
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted([long.name, "shared.bin"])
