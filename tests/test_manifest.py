"""One manifest per model names its parts; one resolver reads it (realedit.manifest)."""
from __future__ import annotations

import json
import shutil

import pytest

from realedit.errors import FormatError, WeightsNotFound
from realedit.manifest import manifest_path, read_manifest, resolve_model, write_manifest
from tiny_model import make_tiny_model


def test_embedded_model_is_described_by_its_manifest():
    files = resolve_model("realedit-celeba64")
    assert files.manifest is not None and files.manifest.name == "realedit-celeba64.model.json"
    assert files.generator.name == "realedit-celeba64.pt" and files.generator.is_file()
    assert files.encoder.name == "realedit-celeba64.encoder.pt" and files.encoder.is_file()
    assert files.bank.name == "realedit-celeba64.directions"
    assert (files.bank.parent / "realedit-celeba64.directions.json").is_file()
    assert (files.licence, files.default_space) == ("research-only", "wp")
    # the generator file's path finds the same manifest
    by_path = resolve_model(files.generator)
    assert (by_path.encoder, by_path.bank, by_path.manifest) == \
        (files.encoder, files.bank, files.manifest)


def test_manifest_names_parts_with_any_file_names(tmp_path):
    model = make_tiny_model(tmp_path)  # tiny.pt + tiny.directions.* (+ no encoder)
    folder = tmp_path / "renamed"
    folder.mkdir()
    shutil.copy(model, folder / "gen.pt")
    for suffix in (".npz", ".json"):
        shutil.copy(model.with_name(model.stem + ".directions" + suffix), folder / f"edits{suffix}")
    # without a manifest, the sidecar names are looked for and none match
    bare = resolve_model(folder / "gen.pt")
    assert (bare.encoder, bare.bank, bare.manifest) == (None, None, None)
    write_manifest(manifest_path(folder / "gen.pt"), generator="gen.pt", bank="edits",
                   licence="test-only", default_space="w")
    files = resolve_model(folder / "gen.pt")
    assert files.bank == folder / "edits" and files.encoder is None
    assert (files.licence, files.default_space) == ("test-only", "w")
    assert resolve_model(folder / "gen.model.json").generator == folder / "gen.pt"
    # and the Editor uses it: the bank under its new name, the manifest's default space
    from realedit import Editor
    ed = Editor.from_pretrained(str(folder / "gen.pt"), inverter="optimize", space=None, steps=1)
    assert ed.space == "w" and "age" in ed.bank.names()


def test_old_sidecar_names_still_work(tmp_path):
    model = make_tiny_model(tmp_path)
    files = resolve_model(model)
    assert files.manifest is None
    assert files.bank == model.with_name(model.stem + ".directions")


def test_bad_manifests_are_one_line_errors(tmp_path):
    m = tmp_path / "x.model.json"
    for text, words in (("{", "not a readable"), ('{"format": "other"}', "not a realedit"),
                        ('{"format": "realedit-model-manifest", "version": 99, "generator": "g"}',
                         "newer"),
                        ('{"format": "realedit-model-manifest"}', "no generator"),
                        ('{"format": "realedit-model-manifest", "generator": "g.pt", '
                         '"encoder": "missing.pt"}', "missing.pt")):
        m.write_text(text)
        with pytest.raises(FormatError, match=words) as err:
            read_manifest(m)
        assert "\n" not in str(err.value)
    with pytest.raises(WeightsNotFound):
        resolve_model("no-such-model-anywhere")
    assert json.loads(write_manifest(m, generator="g.pt").read_text())["generator"] == "g.pt"
