"""End-to-end edit benchmark: seconds per photo (read, detect, align, invert, edit, paste, save).

    python bench/edit.py [--photos 6] [--threads 2] [--skip-1024 | --skip-embedded] [--steps-1024 20]
                         [--device auto] [--batch 1 8 32] [--workers N]
                         [--inverters encoder hybrid optimize pti]
                         [--skip-transfer | --transfer-only]

(a) the embedded model (realedit-celeba64) with each inverter, on CelebA-HQ photos
    (../shared) and astronaut; (b) the StyleGAN2 config-f architecture at 1024 with RANDOM
    weights (cost only: a random LPIPS-VGG as the loss and a random encoder cost what
    pretrained ones do). Also photos/minute for a batch through one Editor.
(c) photos/s end to end per inverter and batch size through ``Editor.invert_many`` (faces of
    several photos in one inversion, read/detect/align in --workers processes), against the
    one-photo-at-a-time ``Editor.edit`` loop on the same device: one table per device.
(d) the transfer modes (--detail residual / warp / replace) on the embedded model: seconds
    per face for Editor.apply alone (edit, synthesis, transfer, paste; one inversion reused),
    pose=+3 and smile=+3, median over the photos.
Goal (issue): <= 2 s per face on the embedded model, <= 60 s on a 1024 model.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realedit import invert  # noqa: E402
from realedit.edit import Direction, DirectionBank  # noqa: E402
from realedit.pipeline import Editor  # noqa: E402
from bench.common import photos, print_table  # noqa: E402


def run(editor, files, out_dir, edits):
    per, stages = [], {}
    for f in files:
        t0 = time.perf_counter()
        res = editor.edit(f, edits)
        res.save(Path(out_dir) / f"{Path(f).stem}_edited{Path(f).suffix}")
        per.append(time.perf_counter() - t0)
        for k, v in res.timings.items():
            stages.setdefault(k, []).append(v)
    return per, {k: statistics.median(v) for k, v in stages.items()}


def run_batched(editor, files, out_dir, edits, batch, workers):
    """Seconds for the whole folder through invert_many + apply + save."""
    t0 = time.perf_counter()
    for f, inv in editor.invert_many(files, batch=batch, workers=workers):
        if isinstance(inv, BaseException):
            raise inv
        editor.apply(inv, edits).save(Path(out_dir) / f"{Path(f).stem}_b{Path(f).suffix}")
    return time.perf_counter() - t0


def batch_table(args, files, tmp):
    """photos/s per inverter: the one-at-a-time loop, then invert_many at each --batch."""
    from realedit.device import resolve_device
    from realedit.stream import default_workers

    device = resolve_device(args.device)
    workers = default_workers(device) if args.workers is None else args.workers
    rows = []
    for method in args.inverters:
        editor = Editor.from_pretrained("realedit-celeba64", inverter=method, device=device)
        editor.edit(files[0], {"age": 1.0})  # warm-up (dlib models, first-call overheads)
        per, _ = run(editor, files, tmp, {"age": 3.0})
        base = len(files) / sum(per)
        rows.append((method, "one at a time (edit)", 0, len(files), f"{base:.3f}", "1.00"))
        print(rows[-1], flush=True)
        for b in args.batch:
            secs = run_batched(editor, files, tmp, {"age": 3.0}, b, workers)
            rows.append((method, f"invert_many batch {b}", workers, len(files),
                         f"{len(files) / secs:.3f}", f"{len(files) / secs / base:.2f}"))
            print(rows[-1], flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type}"
    print(f"\ndevice: {name}; torch threads {torch.get_num_threads()}; "
          f"embedded model; {len(files)} photos")
    print_table(("inverter", "path", "workers", "photos", "photos/s", "x one-at-a-time"), rows)


def random_1024_editor(method, steps):
    from realedit.invert.encoder import Encoder, EncoderConfig
    from realedit.invert.lpips import LPIPS
    from realedit.models.stylegan2 import StyleGAN2Generator

    torch.manual_seed(0)
    G = StyleGAN2Generator(resolution=1024).eval()
    with torch.no_grad():
        G.mapping.w_avg.copy_(G.mapping(torch.randn(256, G.z_dim))[:, 0].mean(0))
    opts = {}
    if method in ("encoder", "hybrid", "pti"):
        opts["encoder"] = Encoder(EncoderConfig.for_generator(G))
    if method in ("optimize", "hybrid", "pti"):
        opts.update(steps=steps, lpips_factory=lambda net: LPIPS.random(net, seed=0), loss="lpips-vgg+mse")
    if method == "pti":  # as many tuning steps as pivot steps (the default 40 would take ~15 min)
        opts["tune_steps"] = steps
    inv = invert.get(method, G, **opts)
    rng = np.random.default_rng(0)
    bank = DirectionBank([Direction("age", rng.standard_normal(512), "random-1024", "w", source="bench")])
    return Editor(G, bank, model_name="random-1024", inverter=inv, space="wp")


def transfer_rows(files):
    """(detail mode, edit, faces, median s per apply) for each transfer mode; the inversion
    (encoder, the cheapest) is done once per photo: apply's cost does not depend on it."""
    from realedit.args import DETAIL_MODES

    editor = Editor.from_pretrained("realedit-celeba64", inverter="encoder")
    inverted = [editor.invert(f) for f in files]
    editor.apply(inverted[0], {"pose": 1.0}, detail="warp")  # warm-up (OpenCV first calls)
    rows = []
    for detail in DETAIL_MODES:
        for edit in ({"pose": 3.0}, {"smile": 3.0}):
            per = []
            for inv in inverted:
                t0 = time.perf_counter()
                editor.apply(inv, edit, detail=detail)
                per.append(time.perf_counter() - t0)
            name, amount = next(iter(edit.items()))
            rows.append((detail, f"{name}={amount:+g}", len(per), f"{statistics.median(per):.3f}"))
            print(rows[-1], flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps-1024", type=int, default=20)
    ap.add_argument("--skip-1024", action="store_true")
    ap.add_argument("--skip-embedded", action="store_true", help="only the 1024 rows")
    ap.add_argument("--device", default=None,
                    help="run only the batch table (c) on this device (auto, cpu, cuda[:N], mps)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--workers", type=int, default=None, help="default: realedit's for the device")
    ap.add_argument("--inverters", nargs="+", default=["encoder", "hybrid", "optimize", "pti"],
                    choices=["encoder", "hybrid", "optimize", "pti"])
    ap.add_argument("--skip-transfer", action="store_true", help="no per-detail-mode table")
    ap.add_argument("--transfer-only", action="store_true", help="only the per-detail-mode table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    files = photos(args.photos)
    if args.device is not None:
        with tempfile.TemporaryDirectory() as tmp:
            batch_table(args, files, tmp)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in () if args.skip_embedded or args.transfer_only else args.inverters:
            t0 = time.perf_counter()
            editor = Editor.from_pretrained("realedit-celeba64", inverter=method)
            load = time.perf_counter() - t0
            editor.edit(files[0], {"age": 1.0})  # warm-up (dlib models, first-call overheads)
            per, stages = run(editor, files, tmp, {"age": 3.0})
            rows.append(("realedit-celeba64", editor.inverter.name, len(files),
                         f"{statistics.median(per):.2f}", f"{60 * len(per) / sum(per):.1f}",
                         f"{stages.get('detect', 0):.2f}", f"{stages.get('invert', 0):.2f}",
                         f"{stages.get('edit_paste', 0):.2f}", f"{load:.1f}"))
            print(rows[-1], flush=True)
        if not (args.skip_1024 or args.transfer_only):
            for method in args.inverters:
                editor = random_1024_editor(method, args.steps_1024)
                per, stages = run(editor, files[-1:], tmp, {"age": 3.0})
                rows.append((f"config-f 1024 (random, {args.steps_1024} steps)", method, 1,
                             f"{per[0]:.2f}", f"{60 / per[0]:.2f}", f"{stages.get('detect', 0):.2f}",
                             f"{stages.get('invert', 0):.2f}", f"{stages.get('edit_paste', 0):.2f}", "-"))
                print(rows[-1], flush=True)
    header = ("model", "inverter", "photos", "s/photo (median)", "photos/min", "detect s", "invert s",
              "edit+paste s", "load s")
    if rows:
        print()
        print_table(header, rows)
    if not (args.skip_embedded or args.skip_transfer):
        trows = transfer_rows(files)
        print()
        print_table(("--detail", "edit", "faces", "s/face apply (median)"), trows)


if __name__ == "__main__":
    main()
