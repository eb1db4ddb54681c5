"""`realedit train-gan`: the embedded face model's training recipe, resumable."""
from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

import click

from . import HELP_SETTINGS

from ..training.gan import AUGMENTATIONS, GanConfig


@click.command("train-gan", context_settings=HELP_SETTINGS)
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Aligned crops as an (N, H, W, 3) uint8 .npy (scripts/prepare_celeba.py makes it).")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: checkpoint.pt, config.json, sample grids.")
@click.option("--kimg", type=float, default=None, help="Stop after this many thousand images shown in total.")
@click.option("--minutes", type=float, default=None, help="Stop after this many minutes of this call.")
@click.option("--channels", type=int, default=None, help="Width at every resolution (new runs only).")
@click.option("--batch", type=int, default=None, help="Batch size (new runs only).")
@click.option("--augment", default=None, metavar="POLICY",
              help="DiffAugment policy, comma-separated from color, translation, cutout, or 'none'; "
                   "may change on resume (a weak D early in a short run learns better with less).")
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile G and D.")
@click.option("--device", default="auto", show_default=True, metavar="DEVICE",
              help="auto (a GPU when there is one), cpu, cuda, cuda:N or mps.")
@click.option("--fresh", is_flag=True, help="Start over even if the run folder has a checkpoint.")
@click.option("--init-from", "init_from", default=None, metavar="MODEL",
              help="A new run starts from this realedit model (name or .pt, e.g. realedit-celeba64): "
                   "its generator and discriminator, fresh optimisers, its architecture.")
def cli(data_path, run_dir, kimg, minutes, channels, batch, augment, compile_, device, fresh,
        init_from):
    """Train a small StyleGAN2 on aligned face crops; resumes from RUN/checkpoint.pt."""
    from ..device import resolve_device
    from ..errors import RealeditError, UsageError
    from ..training.gan import load_checkpoint, train

    try:
        device = resolve_device(device)
    except UsageError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)

    ckpt = Path(run_dir) / "checkpoint.pt"
    if init_from is not None and channels is not None:
        raise click.BadParameter("a run started from a model has that model's width",
                                 param_hint="--channels")
    if ckpt.exists() and not fresh:
        _, cfg = load_checkpoint(ckpt, "cpu")
        if channels is not None or batch is not None:
            raise click.ClickException("--channels/--batch only apply to a new run (use --fresh)")
    else:
        cfg = GanConfig()
    if augment is not None:
        augment = "" if augment.strip().lower() == "none" else augment.replace(" ", "")
        unknown = [p for p in augment.split(",") if p and p not in AUGMENTATIONS]
        if unknown:
            raise click.BadParameter(f"unknown augmentation {unknown[0]!r} (use "
                                     f"{', '.join(AUGMENTATIONS)} or none)", param_hint="--augment")
    updates = {"total_kimg": kimg, "channels": channels, "batch": batch, "compile": compile_,
               "augment": augment}
    cfg = GanConfig(**{f.name: (updates[f.name] if updates.get(f.name) is not None else getattr(cfg, f.name))
                       for f in fields(GanConfig)})
    try:
        train(Path(data_path), Path(run_dir), cfg, resume=not fresh, device=device,
              max_minutes=minutes, log=lambda m: click.echo(m, err=True), init_from=init_from)
    except RealeditError as exc:  # e.g. --init-from a missing model or one without a D
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)

