"""The `realedit` command.

`realedit PHOTO... --attr age=+3 --keep gender` is the main job (the `edit` subcommand, taken
when the first argument is not a subcommand name); the other jobs are subcommands, each living
in `realedit/commands/<feature>.py` and imported only when used so `--help` stays instant.
"""
from __future__ import annotations

import importlib
import sys

import click

from .version import __version__
from .errors import exit_codes_help

# name -> (module, attribute, one-line help). A module's `cli` may be a group whose own
# subcommands are mounted at top level (train-gan, train-encoder), marked by attribute "*".
SUBCOMMANDS = {
    "edit": ("realedit.commands.edit", "cli", "Edit faces in photos (the default command)."),
    "align": ("realedit.commands.align", "cli", "Detect and FFHQ-align faces; write crops and a JSON."),
    "weights": ("realedit.commands.weights", "cli", "List, download, verify and add model weights."),
    "directions": ("realedit.commands.directions", "cli", "Attribute directions: list, fit, SeFa, cosines."),
    "eval": ("realedit.commands.eval", "cli", "Measure an edit on a folder of photos (JSON + PNG grid)."),
    "grid": ("realedit.commands.grid", "cli", "Before | after grid of several edits on several photos."),
    "batch": ("realedit.commands.batch", "cli", "A resumable job over many photos, local or on Ray."),
    "train-gan": ("realedit.commands.train_gan", "cli", "Train the small face StyleGAN2 (resumable)."),
    "train-encoder": ("realedit.commands.train", "train_encoder", "Train an encoder for a generator."),
    "serve": ("realedit.commands.serve", "cli", "Edit in a browser; HTTP API (local web server)."),
}


class RealeditGroup(click.Group):
    """Lazy subcommands plus a default: unknown first words are photos for `edit`."""

    def list_commands(self, ctx):
        return list(SUBCOMMANDS)

    def get_command(self, ctx, name):
        spec = SUBCOMMANDS.get(name)
        if spec is None:
            return None
        module, attr, _ = spec
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:  # feature not built yet in this checkout
                return None
            raise
        cmd = getattr(mod, attr, None)
        if cmd is None and attr != "cli":
            cli = getattr(mod, "cli", None)
            cmd = cli.commands.get(name) if isinstance(cli, click.Group) else None
        if cmd is not None and not cmd.epilog:  # every command's --help shows the one table
            cmd.epilog = exit_codes_help()
        return cmd

    def format_commands(self, ctx, formatter):
        rows = [(name, spec[2]) for name, spec in SUBCOMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx, args):
        # `realedit photo.jpg --attr age=+3`: route to edit before click sees "--attr" as a
        # group option it does not know.
        # Any first word that is neither a subcommand nor one of the group's own options goes
        # to edit too, so edit's options may come first (`realedit -o out/ photo.jpg ...`).
        if args and args[0] not in SUBCOMMANDS and args[0] not in ("-h", "--help", "--version"):
            args = ["edit", *args]
        return super().parse_args(ctx, args)


@click.group(cls=RealeditGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=exit_codes_help())
@click.version_option(__version__, prog_name="realedit")
def cli():
    """Edit real face photos through pretrained GANs, on the CPU.

    \b
    Examples:
      realedit photo.jpg --attr age=+3 --keep gender
      realedit photos/ --attr smile=+2 -o edited/ --compare
      realedit align group.jpg -o crops/ --faces all
      realedit weights list
    """


def main(argv=None):
    """Entry point: user errors become one line on stderr and a non-zero exit, never a traceback
    (set REALEDIT_DEBUG=1 or pass --debug to an edit to see it)."""
    import os

    from .errors import RealeditError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return cli.main(args=args, prog_name="realedit", standalone_mode=True)
    except RealeditError as exc:  # commands normally convert these themselves; this is a net
        if os.environ.get("REALEDIT_DEBUG"):
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
