"""Attribute directions and latent edits at run time: direction banks, conditioning, apply_edits.

    bank = load_bank("path/to/interfacegan_boundaries", model="stylegan_ffhq")
    d = bank.direction("age", keep=["gender"], space="w")
    ws2 = apply_edits(ws, "wp", {"age": 3.0}, keep=["gender"], bank=bank, model="stylegan_ffhq")

The maths is vectors.py, the bank bank.py, direction files files.py and formats.py (other
projects'), where a model's bank comes from banks.py. Fitting, learning and judging directions
(fit, learn, layers, SeFa, calibration, scorers) is offline work: realedit.research.
"""
from ..args import DEFAULT_AMOUNT_RANGE, SPACES
from .apply import MODES, amount_warnings, apply_edits, direction_spaces
from .bank import Direction, DirectionBank, condition
from .banks import bank_for_model, load_bank
from .files import (from_idinvert, load_idinvert_file, load_interfacegan_dir, load_interfacegan_file,
                    parse_interfacegan_name, save_bank)
from .vectors import cosine_matrix, format_layers, parse_layers, project_out

__all__ = ["DEFAULT_AMOUNT_RANGE", "MODES", "SPACES", "Direction", "DirectionBank", "amount_warnings",
           "apply_edits", "bank_for_model", "condition", "cosine_matrix", "direction_spaces",
           "format_layers", "from_idinvert", "load_bank", "load_idinvert_file",
           "load_interfacegan_dir", "load_interfacegan_file", "parse_interfacegan_name",
           "parse_layers", "project_out", "save_bank"]
