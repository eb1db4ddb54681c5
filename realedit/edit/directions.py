"""Direction banks: named unit directions in a generator's latent spaces (the names this module
has always offered; they live in vectors.py (the maths), bank.py (Direction, DirectionBank),
files.py (file formats) and banks.py (where a model's bank comes from)).

A :class:`Direction` is a unit vector (or one unit vector per W+ layer) tied to one model id
and one latent space:

- ``z``  - the input noise space; only edits Z codes;
- ``w``  - the mapped space; edits W codes, and W+ codes on its layer range (default all);
- ``wp`` - a W+ (layer-wise) direction; edits W+ codes only, on its layer range.

Sources read here: the released InterFaceGAN ``*_boundary.npy`` files (named
``{gan}_{dataset}_{attr}[_c_{cond}...][_w]_boundary.npy``), idinvert-style layer-wise dicts
(``{"boundary": (1, [L,] d), "meta_data": {"manipulate_layers": "0-5"}}``, also as a pickled
.npy read through an allow-list), and realedit's own bank format: ``NAME.npz`` (plain float64
arrays, read with ``allow_pickle=False``) next to ``NAME.json`` (all metadata).
"""
from __future__ import annotations

from ..args import DEFAULT_AMOUNT_RANGE, SPACES  # noqa: F401
from .bank import Direction, DirectionBank, _dedupe, condition, space_label  # noqa: F401
from .banks import (BOUNDARIES_ENV, bank_for_model, bank_for_set, boundaries_dirs,  # noqa: F401
                    load_bank)
from .files import (BANK_FORMAT, BANK_VERSION, _bank_paths, from_idinvert,  # noqa: F401
                    load_idinvert_file, load_interfacegan_dir, load_interfacegan_file,
                    parse_interfacegan_name, save_bank)
from .vectors import cosine_matrix, format_layers, parse_layers, project_out  # noqa: F401
