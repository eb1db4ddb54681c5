"""The demo notebooks run headless, top to bottom, on the embedded model (outputs stay out of git)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "demo"
NOTEBOOKS = sorted(DEMO.glob("*.ipynb"))


def test_there_are_three_demo_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "inverters", "directions"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs", []) == [] and cell.get("execution_count") is None


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=1200, kernel_name="python3",
                                     resources={"metadata": {"path": str(DEMO)}})
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    if path.stem == "quickstart":  # its pictures at a size a person can see (was 261x87)
        sizes = picture_sizes(nb)
        assert len(sizes) >= 2 and all(w >= 600 and h >= 300 for w, h in sizes), sizes


def picture_sizes(nb) -> list[tuple[int, int]]:
    """(width, height) of every PNG/JPEG a notebook's outputs show."""
    import base64
    import io

    from PIL import Image

    out = []
    for c in nb.cells:
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            for mime in ("image/png", "image/jpeg"):
                if mime in o.get("data", {}):
                    out.append(Image.open(io.BytesIO(base64.b64decode(o["data"][mime]))).size)
    return out
