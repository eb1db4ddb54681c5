"""What a direction bank offers an interface: one slider per attribute, with its range, whether it
is calibrated and a line saying what moving it does (serve's page, the CLI's listings)."""
from __future__ import annotations

from .apply import direction_spaces
from .vectors import format_layers


def direction_note(d) -> str:
    """One line for a slider: what moving it does, as far as the bank knows."""
    cal = d.stats.get("calibration") or {}
    if d.source == "sefa":
        k = "".join(ch for ch in d.name if ch.isdigit())
        return (f"SeFa component {k or '?'}: an unsupervised direction (an eigenvector of the "
                "generator's first style weights), whatever the model varies most along it; "
                "not named, not calibrated")
    if cal.get("per_unit") is not None:
        photos = f" on {cal['photos']} photos" if cal.get("photos") else ""
        return (f"+1 moves {d.name} by {cal['per_unit']:+.2g} {cal.get('unit', '')}".rstrip()
                + f" (measured{photos}); range ±{d.sensible_range:g} keeps the person")
    return (f"not calibrated: amounts are unit normals, range ±{d.sensible_range:g} by default, "
            "effect not measured")


def sliders(bank, model: str, space: str) -> list[dict]:
    """One slider per attribute ``bank`` can move ``model``'s codes in ``space`` along, named
    ones first; ``group`` "unnamed" marks SeFa components (the page folds them away)."""
    spaces = direction_spaces(space)
    out = []
    for name in bank.names(model=model, space=spaces):
        d = bank.get(name, model=model, space=spaces)
        span = float(d.sensible_range)  # the bank's calibrated range, else the default +-3
        out.append({"name": name, "min": -span, "max": span, "step": round(span / 30, 3),
                    "calibrated": d.amount_range is not None, "scale": d.scale,
                    "layers": format_layers(d.layers) if d.layers is not None else "all",
                    "source": d.source or "", "note": direction_note(d),
                    "group": "unnamed" if d.source == "sefa" else "named"})
    out.sort(key=lambda a: (a["group"] != "named", not a["calibrated"], a["name"]))
    return out
