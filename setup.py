"""Packaging that pyproject.toml cannot express: the repository's top-level ``weights/`` folder
(the built-in registry and the embedded model, where the guide and scripts keep them) ships
inside the package as ``realedit/_weights``; ``realedit.weights.bundled_dir`` finds it there in
an installed wheel and falls back to ``weights/`` in a source checkout. Everything else is in
pyproject.toml."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["realedit", "realedit.*"]) + ["realedit._weights"],
    package_dir={"realedit._weights": "weights"},
)
