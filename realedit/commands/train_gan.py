"""`realedit train-gan`: the embedded face model's training recipe, resumable."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import click

from . import HELP_SETTINGS

from ..training.gan import GanConfig


@click.command("train-gan", context_settings=HELP_SETTINGS)
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Aligned crops as an (N, H, W, 3) uint8 .npy (scripts/prepare_celeba.py makes it).")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: checkpoint.pt, config.json, sample grids.")
@click.option("--kimg", type=float, default=None, help="Stop after this many thousand images shown in total.")
@click.option("--minutes", type=float, default=None, help="Stop after this many minutes of this call.")
@click.option("--channels", type=int, default=None, help="Width at every resolution (new runs only).")
@click.option("--batch", type=int, default=None, help="Batch size (new runs only).")
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile G and D.")
@click.option("--device", default=None, help="cpu or cuda (default: cuda if available).")
@click.option("--fresh", is_flag=True, help="Start over even if the run folder has a checkpoint.")
def cli(data_path, run_dir, kimg, minutes, channels, batch, compile_, device, fresh):
    """Train a small StyleGAN2 on aligned face crops; resumes from RUN/checkpoint.pt."""
    from ..training.gan import load_checkpoint, train

    ckpt = Path(run_dir) / "checkpoint.pt"
    if ckpt.exists() and not fresh:
        _, cfg = load_checkpoint(ckpt, "cpu")
        if channels is not None or batch is not None:
            raise click.ClickException("--channels/--batch only apply to a new run (use --fresh)")
    else:
        cfg = GanConfig()
    updates = {"total_kimg": kimg, "channels": channels, "batch": batch, "compile": compile_}
    cfg = GanConfig(**{f.name: (updates[f.name] if updates.get(f.name) is not None else getattr(cfg, f.name))
                       for f in fields(GanConfig)})
    train(Path(data_path), Path(run_dir), cfg, resume=not fresh, device=device, max_minutes=minutes,
          log=lambda m: click.echo(m, err=True))

