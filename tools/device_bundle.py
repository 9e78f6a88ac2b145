"""Pack the training images for a lent GPU machine into .device/data (git-ignored).

    python tools/device_bundle.py --data ../shared/data [--budget-mib 50]

The device tool sends the working tree plus the paths named in ``carry``, 64 MiB in all, and
the machine cannot download anything; ../shared/data does not travel. So this copies, under a
byte budget: every style image (train/styles unchanged, so the held-out split of
tools/train_shipped.py is the same there; styles/named shrunk to 512 px, since training reads
styles at 256 px anyway), then as many content photos as fit, an even spread of them.
DEVELOPERS.md ("Training on a lent GPU") has the whole loop.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from PIL import Image

from normstyle_core.data import list_images

ROOT = Path(__file__).resolve().parents[1]
MAX_STYLE_SIDE = 512


def tree_bytes() -> int:
    """What travels anyway: tracked and untracked-but-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout
    return sum((ROOT / name).stat().st_size for name in out.decode().split("\0")
               if name and (ROOT / name).is_file())


def copy_style(src: Path, dst: Path) -> None:
    with Image.open(src) as img:
        if max(img.size) <= MAX_STYLE_SIDE:
            shutil.copyfile(src, dst)
            return
        img = img.convert("RGB")
        img.thumbnail((MAX_STYLE_SIDE, MAX_STYLE_SIDE), Image.Resampling.LANCZOS)
        img.save(dst.with_suffix(".jpg"), quality=95)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=ROOT / ".device" / "data")
    ap.add_argument("--budget-mib", type=float, default=0.0,
                    help="bytes for the images (default: 64 MiB less the working tree, less 2 MiB)")
    args = ap.parse_args()
    budget = int(args.budget_mib * 2**20) if args.budget_mib else 62 * 2**20 - tree_bytes()
    if args.out.exists():
        shutil.rmtree(args.out)
    used = 0
    for sub in ("styles/named", "train/styles"):
        dst = args.out / sub
        dst.mkdir(parents=True)
        for src in list_images([args.data / sub]):
            (copy_style if sub == "styles/named" else shutil.copyfile)(src, dst / src.name)
        used += sum(f.stat().st_size for f in dst.iterdir())
    if used > budget:
        raise SystemExit(f"the style images alone take {used / 2**20:.1f} MiB, over the {budget / 2**20:.1f} MiB budget")
    photos = list_images([args.data / "train" / "content"])
    sizes = [p.stat().st_size for p in photos]
    # The largest even spread of the photos that fits: 5% fewer at a time until it does.
    room, take = budget - used, len(photos)
    while take and sum(sizes[i * len(photos) // take] for i in range(take)) > room:
        take = int(take * 0.95)
    dst = args.out / "train" / "content"
    dst.mkdir(parents=True)
    for i in range(take):
        src = photos[i * len(photos) // take]
        shutil.copyfile(src, dst / src.name)
    used += sum(f.stat().st_size for f in dst.iterdir())
    print(f"{args.out}: {len(list(dst.iterdir()))} of {len(photos)} content photos, "
          f"{len(list((args.out / 'train' / 'styles').iterdir()))} training styles, "
          f"{len(list((args.out / 'styles' / 'named').iterdir()))} named styles; "
          f"{used / 2**20:.1f} MiB (budget {budget / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
