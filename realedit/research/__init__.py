"""Offline work on directions: fitting them on generated samples (fit), learning them on real
photos (learn), choosing their W+ layers (layers), SeFa's unsupervised ones (sefa), calibrating
amounts (calibrate), and the judges all of it uses (scorers, attribute_nets, and appearance:
model-free measures of hair greyness, skin detail and shading). Nothing at run time
imports this room; `realedit directions fit|sefa`, `realedit eval` and scripts/ do.

    d = fit_direction(G, get_scorer("male", scorer_dir=...), samples=10000, space="w")
"""
from .fit import fit_boundary, fit_direction, sample_and_score
from .scorers import (AgeGenderScorer, BrightnessScorer, CelebAClassifierScorer, PoseScorer,
                      Scorer, as_scorer, get_scorer)
from .sefa import sefa

__all__ = ["AgeGenderScorer", "BrightnessScorer", "CelebAClassifierScorer", "PoseScorer", "Scorer",
           "as_scorer", "fit_boundary", "fit_direction", "get_scorer", "sample_and_score", "sefa"]
