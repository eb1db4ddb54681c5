"""Ship a trained run as the embedded model: weights/<name>.pt (+ its registry entries).

    python scripts/package_model.py --run /work/runs/celeba64 --name realedit-celeba64

Writes the EMA generator and the discriminator (whose features are the model's default
perceptual loss) in realedit's own format, then rewrites the block between
"# BEGIN <name>" and "# END <name>" in weights/registry.toml with sizes and sha256 of every
bundled file of the model (generator, encoder, direction bank) that exists.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path


from realedit import models
from realedit.fsutil import atomic_write, atomic_write_text
from realedit.training.gan import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def registry_block(name: str, meta: dict) -> str:
    g = WEIGHTS / f"{name}.pt"
    lines = [f"# BEGIN {name} (written by scripts/package_model.py)",
             f'[weights."{name}"]',
             f'bundled = "{g.name}"', 'kind = "stylegan2"', 'format = "realedit-model"',
             'role = "generator"', f'resolution = {meta["resolution"]}', 'dataset = "celeba"',
             f"size = {g.stat().st_size}", f'sha256 = "{sha256(g)}"', 'checksum_source = "computed"',
             'licence = "research-only"',
             'licence_note = "Trained by realedit on CelebA photos, whose licence allows non-commercial '
             'research use only; see weights/README.md."',
             f'directions = "{name}.directions"',
             f'notes = "realedit\'s embedded 64-px StyleGAN2 ({meta["kimg"]:.0f}k images shown); '
             f'encoder {name}.encoder.pt and bank {name}.directions.* beside it."', ""]
    enc = WEIGHTS / f"{name}.encoder.pt"
    if enc.exists():
        lines += [f'[weights."{name}-encoder"]', f'bundled = "{enc.name}"', 'kind = "realedit"',
                  'format = "realedit-encoder"', 'role = "encoder"', f'pairs_with = "{name}"',
                  f'resolution = {meta["resolution"]}', f"size = {enc.stat().st_size}",
                  f'sha256 = "{sha256(enc)}"', 'checksum_source = "computed"',
                  'licence = "research-only"', ""]
    for ext in ("npz", "json"):
        b = WEIGHTS / f"{name}.directions.{ext}"
        if b.exists():
            lines += [f'[weights."{name}-directions-{ext}"]', f'bundled = "{b.name}"',
                      'kind = "realedit"', f'format = "realedit-bank-{ext}"', 'role = "directions"',
                      f'pairs_with = "{name}"', f"size = {b.stat().st_size}",
                      f'sha256 = "{sha256(b)}"', 'checksum_source = "computed"',
                      'licence = "research-only"', ""]
    lines.append(f"# END {name}")
    return "\n".join(lines)


def update_registry(name: str, meta: dict) -> None:
    reg = WEIGHTS / "registry.toml"
    text = reg.read_text()
    block = registry_block(name, meta)
    pat = re.compile(rf"# BEGIN {re.escape(name)} .*?# END {re.escape(name)}", re.S)
    text = pat.sub(lambda _: block, text) if pat.search(text) else text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(reg, text)


def ship_encoder(src: Path, dst: Path) -> None:
    """The encoder file as loaded by realedit, minus what only training needs. fp16 halves it;
    the loader casts back to float32 (the rounding is far below the encoder's own error)."""
    import torch

    obj = torch.load(src, map_location="cpu", weights_only=True)
    obj["optimizer"] = None
    obj["state_dict"] = {k: (v.half() if v.is_floating_point() and v.ndim > 0 else v)
                         for k, v in obj["state_dict"].items()}
    with atomic_write(dst) as fh:
        torch.save(obj, fh)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="training run folder (checkpoint.pt)")
    ap.add_argument("--name", default="realedit-celeba64")
    ap.add_argument("--encoder-from", default=None,
                    help="encoder training checkpoint to ship: optimizer state dropped, fp16 weights")
    ap.add_argument("--registry-only", action="store_true",
                    help="only refresh the registry block (after adding an encoder or bank)")
    args = ap.parse_args(argv)
    out = WEIGHTS / f"{args.name}.pt"
    state, cfg = load_checkpoint(Path(args.run) / "checkpoint.pt", "cpu")
    meta = {"name": args.name, "resolution": cfg.resolution, "kimg": state.nimg / 1000,
            "iterations": state.it, "train_seconds": round(state.seconds),
            "data": "CelebA (../shared/data/celeba, 5400 photos, FFHQ-aligned by realedit, flips)",
            "licence": "research-only (CelebA)", "recipe": "realedit train-gan",
            "config": json.loads(json.dumps(cfg.__dict__)),
            "recipe_changes": [e for e in state.log if "change" in e]}
    if not args.registry_only:
        models.save(state.G_ema.eval(), out, discriminator=state.D.eval(), meta=meta)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) at {meta['kimg']:.1f}k images")
    if args.encoder_from:
        dst = WEIGHTS / f"{args.name}.encoder.pt"
        ship_encoder(Path(args.encoder_from), dst)
        print(f"wrote {dst} ({dst.stat().st_size / 1e6:.1f} MB)")
    update_registry(args.name, meta)
    write_model_manifest(args.name)
    print("registry and manifest updated")


def write_model_manifest(name: str) -> Path:
    """<name>.model.json: the one list of the model's parts that realedit.manifest reads."""
    from realedit.manifest import manifest_path, write_manifest

    enc = f"{name}.encoder.pt"
    bank = f"{name}.directions"
    return write_manifest(
        manifest_path(WEIGHTS / f"{name}.pt"), name=name, generator=f"{name}.pt",
        discriminator=f"{name}.pt", encoder=enc if (WEIGHTS / enc).is_file() else None,
        bank=bank if (WEIGHTS / f"{bank}.json").is_file() else None, licence="research-only",
        default_space="wp", card="README.md")


if __name__ == "__main__":
    main()
