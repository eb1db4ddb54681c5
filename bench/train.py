"""Training throughput: train-gan and train-encoder images per second on a device.

    python bench/train.py [--device auto] [--threads 1] [--iters 6] [--batch 32 128]

train-gan: `train_step` of the embedded model's recipe (64 px, <= 64 channels, augmentation,
lazy R1, EMA) on random data, at each --batch; train-encoder: its step (generated samples, code +
image loss, mse) at batch 8. The first two iterations are warm-up; the rest are timed with the
device's queue drained (losses read back) at the end. One table per device.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realedit.device import resolve_device  # noqa: E402
from realedit.training.gan import GanConfig, make_forwards, new_state, train_step  # noqa: E402
from bench.common import print_table  # noqa: E402


def gan_rate(dev, batch: int, iters: int) -> float:
    cfg = replace(GanConfig(), batch=batch)
    if dev.type == "cuda":  # as train() does
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    state = new_state(cfg, dev)
    G_fwd, D_fwd = make_forwards(state, cfg)
    reals = torch.rand(batch, 3, cfg.resolution, cfg.resolution, device=dev) * 2 - 1
    for _ in range(2):
        out = train_step(state, cfg, reals, G_fwd, D_fwd)
    float(out["loss_D"])
    t = time.perf_counter()
    for _ in range(iters):
        out = train_step(state, cfg, reals, G_fwd, D_fwd)
    float(out["loss_D"])  # drain the queue
    return batch * iters / (time.perf_counter() - t)


def encoder_rate(dev, iters: int) -> float:
    from realedit.training.encoder import EncoderTrainOptions, train_encoder
    from realedit.models import load

    G = load("realedit-celeba64", device=dev)
    opts = EncoderTrainOptions(batch=8, checkpoint_every=0)
    marks = []

    def tick(step, total, info):
        float(info["image"])  # drain the queue at every step: host time = device time
        marks.append(time.perf_counter())
    with tempfile.TemporaryDirectory() as tmp:
        train_encoder(G, out=Path(tmp) / "e.pt", steps=iters + 2, loss="mse", options=opts,
                      callback=tick)
    return 8 * iters / (marks[-1] - marks[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=6)
    ap.add_argument("--batch", type=int, nargs="+", default=[32])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    rows = []
    for b in args.batch:
        rows.append(("train-gan step (64 px, <= 64 ch)", b, f"{gan_rate(dev, b, args.iters):.1f}"))
        print(rows[-1], flush=True)
    rows.append(("train-encoder step (mse)", 8, f"{encoder_rate(dev, args.iters):.1f}"))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{dev.type}, {args.threads} threads"
    print(f"\ndevice: {name}")
    header = ("what", "batch", "images/s")
    print_table(header, rows)


if __name__ == "__main__":
    main()
