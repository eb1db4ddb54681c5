"""Where the tests find data that is not in the repository.

``../shared`` (beside the checkout) holds research-licensed CelebA photos and attribute
scorers. Tests that truly need them skip with a reason saying so; everything else runs on the
repository's own photos (demo/photos) and generated images. Set ``REALEDIT_SHARED`` to use
another folder, or to a missing one (``REALEDIT_SHARED=/nonexistent``) to run the suite as a
clone without the shared data would.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REALEDIT_SHARED") or REPO.parent / "shared")
DEMO_PHOTOS = REPO / "demo" / "photos"
ASTRONAUT = DEMO_PHOTOS / "astronaut.jpg"
