"""README's Python block, pasted into a plain script as it stands (no ``if __name__ ==
"__main__"`` guard) and run: it must finish, write what it says, and report a bad photo by
itself. Worker processes started by spawn/forkserver re-ran such a script once each, and the
job hung until every photo failed with "process pool terminated abruptly"."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "demo" / "photos" / "astronaut.jpg"


def readme_python_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_block_is_the_documented_example():
    code = readme_python_block()
    assert "invert_many(paths, batch=32, workers=4)" in code
    assert "__main__" not in code.replace('`if __name__ == "__main__"`', "")


@pytest.mark.slow
def test_readme_python_block_runs_as_a_plain_script(tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    shutil.copy(ASTRONAUT, tmp_path / "photo.jpg")
    shutil.copy(ASTRONAUT, shots / "a.jpg")
    (shots / "b.jpg").write_bytes(b"not a photo")
    script = tmp_path / "example.py"
    script.write_text(readme_python_block())
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "terminated abruptly" not in p.stdout + p.stderr
    assert (shots / "a_older.jpg").stat().st_size > 0          # the good photo was edited
    assert not (shots / "b_older.jpg").exists()
    bad = [line for line in p.stdout.splitlines() if line.startswith("shots/b.jpg")]
    assert len(bad) == 1 and "b.jpg" in bad[0], p.stdout       # the bad one, by itself
    assert p.stdout.count("a.jpg") == 0                        # the good one printed nothing
