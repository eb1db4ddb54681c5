"""`realedit weights ...`: list, download, verify, locate and add pretrained files."""
from __future__ import annotations

import sys

import click

from .. import weights as W
from . import HELP_SETTINGS, one_line_errors



_one_line_errors = one_line_errors("interrupted; run the same command again to resume")


@click.group(name="weights", context_settings=HELP_SETTINGS)
def cli():
    """Pretrained files: list, download, verify, locate, add.

    Files are cached under $REALEDIT_HOME (default ~/.cache/realedit). Set REALEDIT_OFFLINE=1 to
    forbid any network access.
    """


@cli.command("list")
@click.option("--long", "long_", is_flag=True,
              help="Also show file name, checksum source and boundary bank.")
@_one_line_errors
def list_cmd(long_: bool):
    """Registered files: name, kind, resolution, licence, and whether present."""
    rows = []
    for e in W.iter_entries():
        res = str(e.resolution) if e.resolution else "-"
        present = W.where_found(e) or "no"
        row = [e.name, e.kind, res, e.licence or "?", present]
        if long_:
            row += [e.file, e.checksum_source, e.boundaries or "-"]
        rows.append(row)
    head = ["NAME", "KIND", "RES", "LICENCE", "CACHED"]
    if long_:
        head += ["FILE", "CHECKSUM", "BOUNDARIES"]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


@cli.command("download")
@click.argument("name")
@click.option("--force", is_flag=True, help="Fetch again even if a copy is present.")
@_one_line_errors
def download_cmd(name: str, force: bool):
    """Download NAME into the cache (resumes partial downloads) and print its path."""
    click.echo(str(W.download(name, force=force)))


@cli.command("verify")
@click.argument("name", required=False)
@_one_line_errors
def verify_cmd(name: str | None):
    """Check sizes and checksums of NAME, or of every present file. Exit 1 on any mismatch."""
    results = W.verify(name)
    if name is not None and results[0].status == "missing":
        raise click.ClickException(f"'{name}' is not present; place it at {results[0].path}")
    shown = results if name else [r for r in results if r.status != "missing"]
    for r in shown:
        click.echo(f"{r.status:8}  {r.name}  {r.path}  {r.detail}".rstrip())
    if name is None:
        missing = sum(r.status == "missing" for r in results)
        click.echo(f"{len(shown)} present, {missing} not present", err=True)
    bad = [r for r in results if r.status in ("mismatch", "page")]
    if bad:
        raise click.ClickException(f"{len(bad)} file(s) failed verification: "
                                   + ", ".join(r.name for r in bad))


@cli.command("path")
@click.argument("name")
@_one_line_errors
def path_cmd(name: str):
    """Print where NAME is, or the exact path where it should be placed."""
    e = W.entry(name)
    p = W.locate(e)
    click.echo(str(p))
    if not p.is_file():
        click.echo(f"(not present; place {e.file} there, or run "
                   f"`realedit weights download {name}`)", err=True)


@cli.command("add")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", required=True,
              help="Registry name (a built-in name checks and installs the file).")
@click.option("--kind", help="Model family, e.g. stylegan2.")
@click.option("--format", "format_", help="On-disk format, e.g. stylegan2-ada-pickle.")
@click.option("--resolution", type=int)
@click.option("--licence")
@click.option("--boundaries", help="InterFaceGAN bank that pairs with it, e.g. stylegan_ffhq.")
@click.option("--notes")
@click.option("--copy", is_flag=True, help="Copy the file into the cache (default: use in place).")
@_one_line_errors
def add_cmd(file, name, kind, format_, resolution, licence, boundaries, notes, copy):
    """Register FILE under NAME (stored in the user registry in the cache)."""
    meta = {"kind": kind, "format": format_, "resolution": resolution, "licence": licence,
            "boundaries": boundaries, "notes": notes}
    e = W.add(file, name, copy=copy, **{k: v for k, v in meta.items() if v is not None})
    click.echo(f"{e.name}: {W.locate(e)}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
