"""Attribute directions and latent edits: banks, conditioning, fitting, SeFa, scorers.

    bank = load_bank("path/to/interfacegan_boundaries", model="stylegan_ffhq")
    d = bank.direction("age", keep=["gender"], space="w")
    ws2 = apply_edits(ws, "wp", {"age": 3.0}, keep=["gender"], bank=bank, model="stylegan_ffhq")
    d = fit_direction(G, get_scorer("male", scorer_dir=...), samples=10000, space="w")

"""
from .apply import MODES, amount_warnings, apply_edits, direction_spaces
from .directions import (DEFAULT_AMOUNT_RANGE, SPACES, Direction, DirectionBank, bank_for_model, condition, cosine_matrix,
                         format_layers, from_idinvert, load_bank, load_idinvert_file,
                         load_interfacegan_dir, load_interfacegan_file, parse_interfacegan_name,
                         parse_layers, project_out, save_bank)
from .fit import fit_boundary, fit_direction, sample_and_score
from .scorers import (AgeGenderScorer, BrightnessScorer, CelebAClassifierScorer, PoseScorer,
                      Scorer, as_scorer, get_scorer)
from .sefa import sefa

__all__ = ["DEFAULT_AMOUNT_RANGE", "MODES", "amount_warnings", "SPACES", "AgeGenderScorer", "BrightnessScorer", "CelebAClassifierScorer",
           "Direction", "DirectionBank", "PoseScorer", "bank_for_model", "Scorer", "apply_edits", "as_scorer",
           "condition", "cosine_matrix", "direction_spaces", "fit_boundary", "fit_direction", "format_layers",
           "from_idinvert", "get_scorer", "load_bank", "load_idinvert_file",
           "load_interfacegan_dir", "load_interfacegan_file", "parse_interfacegan_name",
           "parse_layers", "project_out", "sample_and_score", "save_bank", "sefa"]
