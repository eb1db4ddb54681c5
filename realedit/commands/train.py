"""Training commands, mounted at top level by realedit/cli.py: ``realedit train-encoder`` (and the
lead's ``train-gan``). Each command is its own function added to the ``cli`` group."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from . import HELP_SETTINGS

from ..errors import RealeditError


@click.group(context_settings=HELP_SETTINGS)
def cli():
    """Training commands."""


@cli.command("train-encoder", context_settings=HELP_SETTINGS)
@click.option("--model", required=True, help="Generator: registry name or model file.")
@click.option("--data", type=click.Path(exists=True), default=None,
              help="Aligned face photos: a folder of images or an (N, H, W, 3) uint8 .npy.")
@click.option("--steps", type=int, default=2000, show_default=True, help="Total training steps.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Encoder file (default: <generator>.encoder.pt next to the generator file).")
@click.option("--resume", is_flag=True, help="Continue from the output file's checkpoint.")
@click.option("--loss", default="auto", show_default=True,
              help="Image loss, e.g. 'disc+mse', 'lpips-vgg+mse', 'mse'. auto: disc+mse when the "
                   "model ships a discriminator, else lpips-vgg+mse.")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--real-fraction", type=float, default=0.5, show_default=True,
              help="Share of each batch drawn from --data.")
@click.option("--checkpoint-every", type=int, default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--register", "register_name", default=None,
              help="Add the finished encoder to the user weights registry under this name.")
@click.option("--device", default="auto", show_default=True, metavar="DEVICE",
              help="Where the networks run: auto (a GPU when there is one), cpu, cuda, cuda:N or mps.")
@click.option("--threads", type=int, default=0,
              help="CPU threads (0: torch's default). On a shared machine 1 is often fastest.")
def train_encoder(model, data, steps, output, resume, loss, batch, lr, real_fraction,
                  checkpoint_every, seed, register_name, device, threads):
    """Train an encoder (aligned face -> latent) for a generator, on its own samples mixed with
    real aligned photos. Resumable: checkpoints go to the output file."""
    from ..device import resolve_device
    from ..errors import UsageError

    if threads > 0:
        import torch
        torch.set_num_threads(threads)
    try:
        device = resolve_device(device)
    except UsageError as exc:  # exit 2, one line, as for every command's bad argument
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    try:
        _train_encoder(model, data, steps, output, resume, loss, batch, lr, real_fraction,
                       checkpoint_every, seed, register_name, device)
    except RealeditError as exc:  # one line, with the error's own exit code (5: weights)
        from . import CliError
        raise CliError(exc) from None


def _train_encoder(model, data, steps, output, resume, loss, batch, lr, real_fraction,
                   checkpoint_every, seed, register_name, device="cpu"):
    from .. import models
    from ..errors import UsageError, WeightsNotFound
    from ..training.encoder import (EncoderTrainOptions, default_encoder_path, register_encoder,
                                    train_encoder as train)

    if steps < 1 or batch < 1 or not 0 <= real_fraction < 1:
        raise UsageError("--steps and --batch must be >= 1 and --real-fraction in [0, 1)")
    G = models.load(model, device=device)  # the encoder trains on G's device
    D = models.load_discriminator(model, device=device) if loss in ("auto",) or "disc" in loss else None
    out = Path(output) if output else default_encoder_path(model)
    opts = EncoderTrainOptions(batch=batch, lr=lr, real_fraction=real_fraction,
                               checkpoint_every=checkpoint_every, seed=seed)
    bar = click.progressbar(length=steps, label="train-encoder", file=sys.stderr,
                            item_show_func=lambda s: s)
    last = {"done": 0}
    tty = sys.stderr.isatty()
    every = max(1, steps // 50)

    def progress(step, total, info):
        if step == 1 or step % 10 == 0 or step == total:
            bar.update(step - last["done"], f"code {info['code']:.3f} image {info['image']:.4f}")
            last["done"] = step
        if not tty and (step % every == 0 or step == total):  # a log line where no bar shows
            click.echo(f"step {step}/{total} code {info['code']:.4f} image {info['image']:.4f} "
                       f"real {info['real']:.4f} {info['seconds']:.0f}s", err=True)

    try:
        with bar:
            train(G, out=out, data=data, steps=steps, resume=resume, loss=loss, discriminator=D,
                  options=opts, meta={"generator": str(model)}, callback=progress)
    except WeightsNotFound as exc:
        hint = "; or choose another image loss, e.g. --loss mse" if "disc" not in loss else ""
        raise WeightsNotFound(f"{exc}{hint}") from None
    click.echo(f"encoder: {out}", err=True)
    if register_name:
        e = register_encoder(out, register_name, generator_name=None if Path(model).exists() else model)
        click.echo(f"registered as {e.name}", err=True)
    click.echo(str(out))
