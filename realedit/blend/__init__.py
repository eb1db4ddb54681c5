"""Edited aligned crops -> the original photo.

    new_photo = paste_back(photo, aligned, edited_crop)            # landmark mask, colour fix
    new_photo = paste_back_many(photo, [(a1, c1), (a2, c2)], mask="square", poisson=True)
"""
from .masks import landmark_mask, square_mask, user_mask
from .paste import color_correct, crop_mask, paste_back, paste_back_many, paste_delta

__all__ = ["color_correct", "crop_mask", "landmark_mask", "paste_back", "paste_back_many", "paste_delta",
           "square_mask", "user_mask"]
