"""Numbers a user reads in --help, `directions list` and the serve page come from the bank's own
records (issue 23: help said smile=+3 was "+2.3 logit" while the bank measured +1.2)."""
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from click.testing import CliRunner

from realedit.args import measured_effects
from realedit.cli import cli
from realedit.manifest import bank_entries

REPO = Path(__file__).resolve().parents[1]
BANK = REPO / "weights" / "realedit-celeba64.directions.json"


def _cal(per_unit, unit, photos=12):
    return {"calibration": {"per_unit": per_unit, "unit": unit, "photos": photos}}


def test_measured_effects_reads_the_calibration():
    entries = [{"name": "smile", "conditions": [], "stats": _cal(0.2, "logit")},
               {"name": "smile", "conditions": ["gender"], "stats": _cal(0.5, "logit")},
               {"name": "age", "conditions": ["gender"], "stats": _cal(1.0, "years")},
               {"name": "sefa0", "conditions": [], "stats": {}}]
    text = measured_effects(entries)
    assert text.startswith("+3 moves smile +0.6 logit (+1.5 with --keep gender), age +3 years "
                           "with --keep gender")
    assert "on 12 photos" in text and "sefa0" not in text
    assert measured_effects([{"name": "x", "stats": {}}]) == ""


def test_edit_help_says_what_the_embedded_bank_measured():
    entries = json.loads(BANK.read_text())["directions"]
    smile_kept = next(e for e in entries if e["name"] == "smile" and e["conditions"] == ["gender"])
    want = f"{3 * smile_kept['stats']['calibration']['per_unit']:+.2g} with --keep gender"
    res = CliRunner().invoke(cli, ["edit", "--help"], terminal_width=1000)
    assert res.exit_code == 0
    assert measured_effects(bank_entries("realedit-celeba64")) in " ".join(res.output.split())
    assert want in res.output and "+2.3" not in res.output


def test_help_reads_json_without_loading_torch():
    code = ("import sys; from realedit.cli import main\n"
            "try:\n    main(['edit', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch loaded'")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr


def test_directions_list_without_a_model_uses_the_default():
    res = CliRunner().invoke(cli, ["directions", "list"])
    assert res.exit_code == 0, res.output
    assert "realedit-celeba64" in res.output and "smile|gender" in res.output
    entries = json.loads(BANK.read_text())["directions"]
    kept = next(e for e in entries if e["name"] == "smile" and e["conditions"] == ["gender"])
    assert f"+1: {kept['stats']['calibration']['per_unit']:+.2g} logit" in res.output  # the bank's own


def test_serve_sliders_say_what_they_do():
    from realedit.edit import load_bank
    from realedit.edit.sliders import sliders

    bank = load_bank(BANK)
    editor = SimpleNamespace(space="wp", bank=bank, model_name="realedit-celeba64")
    attrs = {a["name"]: a for a in sliders(editor.bank, editor.model_name, editor.space)}
    assert attrs["sefa0"]["group"] == "unnamed" and "SeFa component 0" in attrs["sefa0"]["note"]
    assert "not calibrated" in attrs["gender"]["note"]
    assert attrs["smile"]["group"] == "named" and "+1 moves smile by +0.22 logit" in attrs["smile"]["note"]
    names = [a["name"] for a in sliders(editor.bank, editor.model_name, editor.space)]
    assert names.index("smile") < names.index("gender") < names.index("sefa0")  # named first
    js = (REPO / "realedit" / "serve" / "static" / "app.js").read_text()
    assert "a.note" in js and "Unnamed directions" in js
