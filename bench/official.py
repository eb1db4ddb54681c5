"""The official StyleGAN2 FFHQ stack at full size: e4e inversion + one edit + paste, per photo.

    OMP_NUM_THREADS=2 python bench/official.py [--photos 4] [--threads 2] [--keep DIR]
                                              [--device cpu] [--edit age=+3]

Files in the official formats with RANDOM weights (no official weights here; random ones cost
what the trained ones do): an e4e checkpoint whose decoder is a StyleGAN2 config-f 1024 px
generator (rosinality layout) and whose encoder is the full IR-SE-50 Encoder4Editing (64..512
channels, 18 heads), 1.2 GB like the released file. The edit uses e4e's age direction from
../shared/data/e4e_directions when present (a random unit vector otherwise).

Measured: model load (the checkpoint memory-mapped, encoder + decoder built), then per photo
``Editor.edit`` (read, detect, align, e4e inversion, edit, synthesis, warp transfer, paste) and
its stages; peak resident memory of the process (ru_maxrss). Goal (issue 22): <= 15 s per photo
on this project's 2-core CPU. ``--keep DIR`` writes the checkpoint there once and reuses it.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the official-layout writers live with the tests

from bench.common import photos, print_table  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def make_checkpoint(path: Path, seed: int = 0) -> None:
    """A full-size e4e checkpoint in the released layout, random weights."""
    from fixtures_models import export_psp, psp_encoder_shapes, random_psp_encoder_state
    from realedit import models

    torch.manual_seed(seed)
    G = models.build("stylegan2", 1024).eval()  # config-f: 512-d, 8 mapping layers, 18 ws
    with torch.no_grad():
        G.w_avg.copy_(G.mapping(torch.randn(2000, G.z_dim))[:, 0].mean(0))
    enc = random_psp_encoder_state(psp_encoder_shapes(G.num_ws), seed)
    torch.save(export_psp(enc, G, latent_avg=G.w_avg.detach().repeat(G.num_ws, 1)), path)


def age_bank(model_id: str):
    from realedit.edit import Direction, DirectionBank
    from realedit.edit.formats import load_e4e_direction

    f = ROOT.parent / "shared" / "data" / "e4e_directions" / "age.pt"
    if f.is_file():
        d = load_e4e_direction(f, "age", model=model_id)
    else:
        v = torch.randn(512, generator=torch.Generator().manual_seed(1)).double().numpy()
        d = Direction("age", v, model_id, "w", source="random")
    return DirectionBank([d]), d.source


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=4, help="astronaut + up to N-1 CelebA-HQ photos")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--keep", type=Path, default=None, help="folder to keep the 1.2 GB checkpoint in")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--edit", default="age=+3")
    ap.add_argument("--make", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make:
        make_checkpoint(args.make)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    from realedit.args import parse_edits
    from realedit.pipeline import Editor

    edits = parse_edits([args.edit])
    folder = args.keep or Path(tempfile.mkdtemp(prefix="realedit-official-"))
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / "e4e_ffhq_encode.random.pt"
    t0 = time.perf_counter()
    if not ckpt.is_file():  # in another process, so that its memory is not this one's peak
        import subprocess
        subprocess.run([sys.executable, __file__, "--make", str(ckpt)], check=True)
        print(f"wrote {ckpt} ({ckpt.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
    bank, source = age_bank(str(ckpt))
    t0 = time.perf_counter()
    editor = Editor.from_pretrained(str(ckpt), bank=bank, device=args.device)
    load_s = time.perf_counter() - t0
    rss_load = peak_rss_mb()
    # A yardstick that shares the run's conditions: 1024 px syntheses timed between the photos
    # (the machine's load changes; their median is compared with the photos' median).
    ws = editor.G.mapping(torch.randn(1, 512, generator=torch.Generator().manual_seed(0))).detach()
    g_times = []

    def time_g():
        with torch.no_grad():
            t0 = time.perf_counter()
            editor.G.synthesis(ws, noise="const")
            g_times.append(time.perf_counter() - t0)

    time_g()
    rows, totals = [], []
    for i, p in enumerate(photos(args.photos)):
        t0 = time.perf_counter()
        r = editor.edit(p, edits)
        total = time.perf_counter() - t0
        t = r.timings
        rows.append([p.name + (" (first)" if i == 0 else ""), f"{total:.1f}",
                     f"{t.get('read', 0) + t.get('detect', 0) + t.get('align', 0):.1f}",
                     f"{t.get('invert', 0):.1f}", f"{t.get('edit_paste', 0):.1f}",
                     f"{r.photo.width}x{r.photo.height}"])
        totals.append(total)
        time_g()
    print(f"# e4e (Encoder4Editing, IR-SE-50, 18 heads) + StyleGAN2 config-f 1024, random weights; "
          f"inverter {editor.inverter.name}; edit {args.edit} ({source} direction); device "
          f"{editor.device}; torch threads {torch.get_num_threads()}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print_table(["photo", "total s", "read+detect+align s", "e4e invert s", "edit+paste s", "size"], rows)
    print()
    steady = statistics.median(totals[1:] or totals)
    g_fwd = statistics.median(g_times[1:] or g_times)
    print_table(["model load s", "median s/photo (after the first)", "G 1024 forward s",
                 "photo / G forward", "peak RSS MB (load)", "peak RSS MB (run)"],
                [[f"{load_s:.1f}", f"{steady:.1f}", f"{g_fwd:.2f}", f"{steady / g_fwd:.1f}",
                  f"{rss_load:.0f}", f"{peak_rss_mb():.0f}"]])
    # ../shared/REFERENCE.md: a config-f 1024 forward takes 2.1 s on this CPU, idle, 2 threads.
    print(f"\nestimate for the idle 2-core CPU (2 threads, G forward 2.1 s): "
          f"{steady / g_fwd * 2.1:.1f} s per photo (this run's ratio x 2.1 s)")


if __name__ == "__main__":
    main()
