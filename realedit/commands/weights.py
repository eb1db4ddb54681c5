"""`realedit weights ...`: list, download, verify, locate and add pretrained files."""
from __future__ import annotations

import sys

import click

from .. import weights as W
from ..errors import WeightsNotFound
from . import HELP_SETTINGS, one_line_errors



_one_line_errors = one_line_errors("interrupted; run the same command again to resume")


@click.group(name="weights", context_settings=HELP_SETTINGS)
def cli():
    """Pretrained files: list, download, verify, locate, add.

    Files are cached under $REALEDIT_HOME (default ~/.cache/realedit). Set REALEDIT_OFFLINE=1 to
    forbid any network access.
    """


def _model_status(e) -> str:
    """For a model (generator, or a pSp / e4e file holding one): 'complete' when the generator,
    its encoder and every direction file it uses are here, else how many of them are."""
    from ..manifest import registered_parts

    if e.role not in ("generator", "encoder") or (e.role == "encoder" and not e.boundaries):
        return "-"
    parts = registered_parts(e.name).entries
    here = sum(bool(W.where_found(p)) for p in parts)
    return "complete" if here == len(parts) else f"{here}/{len(parts)} files"


@cli.command("list")
@click.option("--long", "long_", is_flag=True,
              help="Also show file name, checksum source and direction set.")
@click.option("--all", "all_", is_flag=True, help="Also list every direction file.")
@_one_line_errors
def list_cmd(long_: bool, all_: bool):
    """Registered files: name, kind, resolution, licence, whether present, and for each model
    whether it is complete (generator, encoder and direction files all here; `realedit weights
    download NAME --all` fetches what is missing)."""
    rows, sets = [], {}
    for e in W.iter_entries():
        present = W.where_found(e) or "no"
        if e.role == "directions":
            key = e.bank or e.pairs_with or e.name
            n, have = sets.get(key, (0, 0))
            sets[key] = (n + 1, have + (present != "no"))
            if not all_:
                continue
        res = str(e.resolution) if e.resolution else "-"
        row = [e.name, e.kind, res, e.licence or "?", present, _model_status(e)]
        if long_:
            row += [e.file, e.checksum_source, e.boundaries or e.bank or "-"]
        rows.append(row)
    head = ["NAME", "KIND", "RES", "LICENCE", "CACHED", "MODEL"]
    if long_:
        head += ["FILE", "CHECKSUM", "DIRECTIONS"]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if sets and not all_:
        summary = ", ".join(f"{b} {have}/{n}" for b, (n, have) in sorted(sets.items()))
        click.echo(f"direction files here, per set: {summary} (--all lists them)")


@cli.command("download")
@click.argument("name")
@click.option("--all", "all_", is_flag=True,
              help="Everything the model uses: its generator, its encoder and its direction files.")
@click.option("--force", is_flag=True, help="Fetch again even if a copy is present.")
@_one_line_errors
def download_cmd(name: str, all_: bool, force: bool):
    """Download NAME into the cache (resumes partial downloads, checks sizes and checksums,
    shows each file's licence) and print its path. With --all, every file the model NAME uses;
    a file that fails is reported and the others are still fetched (exit 5 if any failed)."""
    if not all_:
        click.echo(str(W.download(name, force=force)))
        return
    from ..errors import WeightsError
    from ..manifest import registered_parts

    entries = registered_parts(name).entries
    failed = []
    for e in entries:
        had = bool(W.where_found(e)) and not force
        try:
            path = W.download(e.name, force=force)
        except WeightsError as exc:
            failed.append((e.name, exc))
            click.echo(f"failed    {e.name}: {exc}", err=True)
            continue
        click.echo(f"{'here' if had else 'fetched':9} {e.name}  {path}")
    if failed:
        first = failed[0][1]
        raise type(first)(f"{len(failed)} of {len(entries)} files of {name} failed "
                          f"({', '.join(n for n, _ in failed)}); run the same command again "
                          f"to retry and resume")
    click.echo(f"{name}: complete ({len(entries)} files)", err=True)


@cli.command("verify")
@click.argument("name", required=False)
@_one_line_errors
def verify_cmd(name: str | None):
    """Check sizes and checksums of NAME, or of every present file. Exit 1 on any mismatch."""
    results = W.verify(name)
    if name is not None and results[0].status == "missing":
        e = W.entry(name)
        how = (f"`realedit weights download {name}` fetches it" if e.urls
               else f"get {e.file} from {e.page or 'its publisher'}")
        raise WeightsNotFound(f"'{name}' ({e.file}) is not present: {how}, or place it at "
                                f"{results[0].path}")
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
