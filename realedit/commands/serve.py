"""`realedit serve`: the editor in a browser, and an HTTP API, on one local server."""
from __future__ import annotations

import ipaddress
import sys

import click

from . import HELP_SETTINGS, detector_option, one_line_errors, threads_option
from ..args import INVERTERS
from ..errors import UsageError


def exposure_warning(host: str) -> str | None:
    """A warning when ``host`` makes the server reachable from other machines (None for
    loopback): the server has no accounts, and anyone who can reach it can use it."""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve to anything
    return (f"WARNING: bound to {host}: anyone who can reach this address can upload photos and "
            "use this machine's CPU; there are no accounts. Use --host 127.0.0.1 unless you "
            "mean it.")


@click.command("serve", context_settings=HELP_SETTINGS)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback exposes the server (warned).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--model", default=None, help="Registry name or model file (default as for edit).")
@click.option("--device", default="auto", show_default=True, metavar="DEVICE",
              help="Where the networks run: auto (a GPU when there is one), cpu, cuda, cuda:N "
                   "or mps.")
@click.option("--inverter", type=click.Choice(INVERTERS),
              default=None,
              help="How uploaded photos are inverted (once per photo). Default: encoder for "
                   "pSp / e4e models (e4e for the official StyleGAN2 FFHQ ones), else hybrid.")
@click.option("--steps", type=click.IntRange(0, 100000), default=None,
              help="Refinement / optimisation steps (default: the inverter's).")
@click.option("--max-upload-mb", type=click.FloatRange(0.1, 1024), default=30, show_default=True,
              help="Largest upload accepted.")
@click.option("--max-megapixels", type=click.FloatRange(0.01, 150), default=40, show_default=True,
              help="Largest photo accepted, checked from the header before decoding.")
@click.option("--session-minutes", type=click.FloatRange(0.1, 24 * 60), default=30,
              show_default=True,
              help="A photo unused this long is forgotten and its files deleted.")
@click.option("--max-sessions", type=click.IntRange(1, 1000), default=16, show_default=True,
              help="Photos held at once (each keeps its pixels in memory).")
@click.option("--max-per-client", type=click.IntRange(1, 1000), default=None,
              help="Photos one remote address may hold (default: half of --max-sessions); "
                   "clients on this machine share them all.")
@click.option("--max-queue", type=click.IntRange(1, 1000), default=8, show_default=True,
              help="Photos allowed to wait for inversion (one is inverted at a time).")
@click.option("--big-photo-mp", type=click.FloatRange(0.01, 1000), default=4, show_default=True,
              help="Photos over this many megapixels are searched for faces in a lane of "
                   "their own, so smaller uploads never wait behind them.")
@detector_option()
@threads_option()
@one_line_errors(interrupted="stopped")
def cli(host, port, model, device, inverter, steps, max_upload_mb, max_megapixels,
        session_minutes, max_sessions, max_per_client, max_queue, big_photo_mp, detector,
        threads):
    """Start a local web app: drop a photo, move attribute sliders, download the edited photo.

    The same server answers an HTTP API (OpenAPI docs at /docs):

    \b
      ID=$(curl -s -F file=@photo.jpg -F faces=largest http://127.0.0.1:8000/api/sessions \\
           | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
      curl -s "http://127.0.0.1:8000/api/sessions/$ID?wait=120" > /dev/null
      curl -s -o edited.jpg \\
           "http://127.0.0.1:8000/api/sessions/$ID/image?edit=smile=2&keep=gender&size=full"
    """
    try:
        import fastapi  # noqa: F401
        import fastapi_offline  # noqa: F401
        import python_multipart  # noqa: F401 - for uploads
        import uvicorn
    except ImportError as exc:
        raise UsageError(f"realedit serve needs the serve extra ({exc.name} is missing): "
                         "pip install 'realedit[serve]'") from None
    import time

    from ..device import resolve_device
    from ..pipeline import Editor
    from ..serve import ServeConfig, create_app, warm_up

    t0 = time.perf_counter()
    editor = Editor.from_pretrained(model, inverter=inverter, steps=steps,
                                    device=resolve_device(device), threads=threads,
                                    detector=None if detector == "hog" else detector)
    warm_up(editor)
    click.echo(f"model: {editor.model_name} ({editor.G.kind}, {editor.G.resolution} px); "
               f"inverter: {getattr(editor.inverter, 'name', inverter)}; "
               f"device: {editor.device}; loaded in "
               f"{time.perf_counter() - t0:.1f} s", err=True)
    warning = exposure_warning(host)
    if warning:
        click.secho(warning, fg="yellow", err=True)
    config = ServeConfig(max_upload_bytes=int(max_upload_mb * 2**20),
                         max_pixels=int(max_megapixels * 1e6), session_ttl=session_minutes * 60,
                         max_sessions=max_sessions, max_per_client=max_per_client,
                         max_waiting=max_queue, big_photo_pixels=int(big_photo_mp * 1e6))
    # On loopback only this machine's own names are answered (DNS rebinding: a page on
    # another site whose name resolves to 127.0.0.1 must not drive the server).
    hosts = None if warning else sorted({host, "127.0.0.1", "localhost", "::1"})
    app = create_app(editor, config, warn=warning, allowed_hosts=hosts)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"realedit serve: open http://{shown}:{port}/ (API docs at /docs); Ctrl-C stops",
               err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except OSError as exc:  # e.g. the port is taken
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sys.exit(0)
