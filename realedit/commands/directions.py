"""`realedit directions ...`: list banks, fit new directions, SeFa, cosine tables.

    realedit directions list stylegan-ffhq-1024
    realedit directions list my_bank.json
    realedit directions cosine stylegan-ffhq-1024 --space z
    realedit directions fit --model realedit-celeba64 --scorer male --scorer-dir DIR \\
        --samples 10000 --space w -o weights/realedit-celeba64.directions
    realedit directions sefa --model realedit-celeba64 --layers 0-3 -o sefa_bank
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from . import HELP_SETTINGS, one_line_errors
from ..args import SPACES
from ..errors import OutputError, RealeditError


_one_line_errors = one_line_errors()


@click.group(name="directions", context_settings=HELP_SETTINGS)
def cli():
    """Attribute directions: list a model's bank, fit new ones, SeFa, cosine tables.

    A SOURCE is a registered model name (its InterFaceGAN files and/or its fitted bank), a bank
    file (NAME.npz + NAME.json), an InterFaceGAN .npy file or a folder of them.
    """


def _stats_summary(d) -> str:
    st = d.stats
    if "val_accuracy" in st:
        return (f"val {st['val_accuracy']:.3f}  all {st.get('all_accuracy', float('nan')):.3f}  "
                f"n={st.get('samples', '?')}  scorer={st.get('scorer', '?')}")
    if d.source == "learned" and "success" in st:
        return (f"held-out success {st.get('init_success', float('nan')):.3f} -> "
                f"{st['success']:.3f}  photos={st.get('photos_train', '?')}+{st.get('photos_val', '?')}")
    if "eigenvalue" in st:
        return f"eigenvalue {st['eigenvalue']:.4g} ({100 * st.get('explained', 0):.1f}%)"
    if d.source == "ganspace":  # e4e's named GANSpace edit: +1 = its published strength
        return (f"PCA component {st['component']}: +1 moves its coordinate to "
                f"{st['strength']:+g} std ({st.get('file', '')})")
    return st.get("file", "")


def _unit_summary(d) -> str:
    """What +1 does, from the bank's calibration on photos (stats["calibration"]), if any."""
    cal = d.stats.get("calibration") or {}
    per = cal.get("per_unit")
    if per is None:
        return ""
    return f"+1: {per:+.2g} {cal.get('unit', '')}".rstrip()


@cli.command(name="list")
@click.argument("source", required=False)
@click.option("--model", "model", default=None, help="Only directions of this model id.")
@click.option("--space", type=click.Choice(SPACES), default=None, help="Only this space.")
@_one_line_errors
def list_cmd(source, model, space):
    """List the directions of SOURCE (model name, bank file or InterFaceGAN folder; default:
    the model `realedit` edits with when none is named).

    scale: unit normals moved per +1 of --attr (1 = uncalibrated); range: the largest |amount|
    measured to keep the face (default 3 where not measured; realedit warns beyond it); +1: the
    mean effect of --attr NAME=+1 on photos, where the bank was calibrated. Source ganspace (e4e's
    named GANSpace edits): the amount is the fraction of e4e's published edit (+1: exactly it).
    """
    from ..edit import format_layers, load_bank
    from ..edit.bank import space_label
    from ..manifest import default_model_name

    if source is None:
        source = default_model_name()
        click.echo(f"model: {source} (the default; name another as SOURCE)", err=True)
    bank = load_bank(source, model=model)
    if space:
        bank = bank.filter(space=space)
    rows = [(d.model, d.label, space_label(d.space), format_layers(d.layers), d.source,
             f"{d.scale:g}", f"+-{d.sensible_range:g}" + ("" if d.amount_range is not None else "*"),
             _unit_summary(d), _stats_summary(d)) for d in bank]
    if not rows:
        raise click.ClickException(f"no directions in {source}" + (f" for space {space}" if space else ""))
    head = ("model", "direction", "space", "layers", "source", "scale", "range", "effect", "details")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    click.echo(f"{len(rows)} direction(s)" + ("; * = not measured, default range"
                                              if any(d.amount_range is None for d in bank) else ""),
               err=True)


@cli.command()
@click.argument("source")
@click.argument("names", nargs=-1)
@click.option("--model", "model", default=None, help="Model id (when SOURCE holds several).")
@click.option("--space", type=click.Choice(SPACES), default=None,
              help="Latent space (when the model has directions in several).")
@_one_line_errors
def cosine(source, names, model, space):
    """Cosine similarities between the primal directions of SOURCE (optionally only NAMES)."""
    from ..edit import load_bank

    bank = load_bank(source, model=model)
    labels, m = bank.cosine(list(names) or None, model=model, space=space)
    w = max(6, *(len(n) for n in labels))
    click.echo(" " * w + "".join(f"{n[:10]:>11}" for n in labels))
    for n, row in zip(labels, m):
        click.echo(f"{n:<{w}}" + "".join(f"{v:>11.3f}" for v in row))


def _load_generator(model: str, device=None):
    from ..models import load

    G = load(model, device=device)
    path = Path(model)
    model_id = path.stem if path.exists() else model
    meta = getattr(G, "meta", None) or {}
    if path.exists() and isinstance(meta, dict) and meta.get("name"):
        model_id = str(meta["name"])
    return G, model_id


def _open_output(out: str):
    """The bank at OUT (empty if absent); OutputError if OUT exists but is not a bank."""
    from ..edit import DirectionBank, load_bank
    from ..edit.files import _bank_paths

    npz, js = _bank_paths(out)
    if not (js.exists() or npz.exists()):
        return DirectionBank()
    try:
        return load_bank(js)
    except RealeditError as exc:
        raise OutputError(f"{js} exists and is not a readable direction bank ({exc}); "
                          f"choose another -o") from None


def _check_writable(out: str) -> None:
    """Fail before the work if the bank's folder cannot be created or written."""
    import os

    from ..edit.files import _bank_paths

    folder = _bank_paths(out)[0].parent.absolute()
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write a bank into {folder}")


def _check_free(bank, key, replace: bool, out: str) -> None:
    if not replace and key in {e.key for e in bank}:
        raise OutputError(f"{out}: the bank already has {key[1]} for {key[0]} in {key[2]}; "
                          f"pass --replace to overwrite it")


def _save_into(new_dirs, out: str, replace: bool):
    """Add the new directions to the bank at OUT (created if absent); atomic writes."""
    from ..edit.files import save_bank

    bank = _open_output(out)
    for d in new_dirs:
        _check_free(bank, d.key, replace, out)
        bank.add(d)
    return save_bank(bank, out)


@cli.command()
@click.option("--model", "model", required=True, help="Generator: registry name or model file.")
@click.option("--scorer", required=True,
              help="pose | brightness | male | smile | age | gender | path to a scorer network "
                   "(faceres: PATH:male for P(male)).")
@click.option("--scorer-dir", type=click.Path(file_okay=False), default=None,
              help="Folder holding the attribute networks named by male/smile/age/gender "
                   "(default $REALEDIT_SCORER_DIR).")
@click.option("--samples", type=click.IntRange(min=10), default=10000, show_default=True)
@click.option("--space", type=click.Choice(SPACES), default="w", show_default=True)
@click.option("-o", "--output", "out", required=True,
              help="Bank to write (NAME -> NAME.npz + NAME.json); an existing bank is extended.")
@click.option("--name", default=None, help="Attribute name (default: the scorer's name).")
@click.option("--layers", default=None, help="W+ layer range for the edit, e.g. 0-5 (default all).")
@click.option("--ratio", type=click.FloatRange(0, 0.5, min_open=True), default=0.02,
              show_default=True, help="Fraction kept at each end of the score range.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.3, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model-id", default=None, help="Id to store the direction under "
              "(default: the registry name, or the model file's name).")
@click.option("--replace", is_flag=True, help="Overwrite a direction of the same name in the bank.")
@click.option("--device", default="auto", show_default=True, metavar="DEVICE",
              help="Where the networks run: auto (a GPU when there is one), cpu, cuda, cuda:N or mps.")
@_one_line_errors
def fit(model, scorer, scorer_dir, samples, space, out, name, layers, ratio, val_fraction, batch,
        seed, model_id, replace, device):
    """Fit a direction the InterFaceGAN way: sample, synthesise, score, linear SVM."""
    from ..edit import DirectionBank, parse_layers
    from ..edit.files import _bank_paths
    from ..research.fit import fit_direction
    from ..research.scorers import get_scorer

    from ..device import resolve_device

    parse_layers(layers)
    device = resolve_device(device)
    sc = get_scorer(scorer, scorer_dir=scorer_dir, device=device)
    G, default_id = _load_generator(model, device)
    npz, js = _bank_paths(out)
    if Path(model).exists() and Path(model).resolve() in (npz.resolve(), js.resolve()):
        raise OutputError("-o would overwrite the model file")
    # Refuse before minutes of fitting, not after.
    _check_writable(out)
    _check_free(_open_output(out), (model_id or default_id, name or sc.name, space, ()), replace, out)
    stderr = sys.stderr
    with click.progressbar(length=samples, label=f"fitting {name or sc.name}", file=stderr,
                           show_pos=True) as bar:
        last = [0]

        def progress(done, total):
            bar.update(done - last[0])
            last[0] = done

        d = fit_direction(G, sc, samples, space, batch=batch, ratio=ratio,
                          val_fraction=val_fraction, seed=seed, progress=progress, name=name,
                          model=model_id or default_id, layers=layers, device=device)
    npz, js = _save_into(DirectionBank([d]), out, replace)
    st = d.stats
    click.echo(f"{d.describe()}: val accuracy {st['val_accuracy']:.3f}, all-sample accuracy "
               f"{st['all_accuracy']:.3f} ({st['chosen_per_side']} per side of {st['samples_scored']} "
               f"scored, {st['seconds']:.1f} s)")
    click.echo(f"written {npz} and {js}", err=True)


@cli.command()
@click.option("--model", "model", required=True, help="Generator: registry name or model file.")
@click.option("--layers", default="all", show_default=True,
              help="W+ layers whose style weights are factorised, e.g. 0-3 (StyleGAN only).")
@click.option("--num", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("-o", "--output", "out", default=None,
              help="Also save the directions into this bank (NAME.npz + NAME.json).")
@click.option("--model-id", default=None, help="Id to store the directions under.")
@click.option("--replace", is_flag=True, help="Overwrite directions of the same name in the bank.")
@_one_line_errors
def sefa(model, layers, num, out, model_id, replace):
    """SeFa: closed-form unsupervised directions, listed with their eigenvalues."""
    from ..edit import format_layers
    from ..research.sefa import sefa as run_sefa

    if out:
        _check_writable(out)
    G, default_id = _load_generator(model)
    bank = run_sefa(G, layers, num, model=model_id or default_id)
    for d in sorted(bank, key=lambda d: d.stats["rank"]):
        st = d.stats
        click.echo(f"{d.name:<8} eigenvalue {st['eigenvalue']:>10.4f}  {100 * st['explained']:5.1f}%  "
                   f"space {d.space}  layers {format_layers(d.layers)}")
    if out:
        npz, js = _save_into(bank, out, replace)
        click.echo(f"written {npz} and {js}", err=True)


def main():  # pragma: no cover - `python -m realedit.commands.directions`
    cli(prog_name="realedit directions")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
