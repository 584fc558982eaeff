"""Small README gallery PNGs from the full-size figures.

``python -m figures.gallery [--src DIR] [--dest DIR] [--width PX]`` (or ``python -m figures
--gallery``) downsizes every ``NAME.png`` found in ``--src`` (default ``./selfdistill-figures``) to
``--width`` pixels (default 900) and writes an optimised, palette-quantised PNG
``DEST/NAME.png`` (default ``docs/gallery``), typically 20-50 KB: small enough to commit.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image  # pillow is a dependency of matplotlib

from figures import FIGURES
from figures.common import default_out, log
from selfdistill_cli import ArgumentParser, nonempty_path
from selfdistill_cli.files import atomic_write_bytes, check_writable_dir

#: Target width of gallery images in pixels.
WIDTH = 900
#: Palette size of the quantised PNG (octree quantisation keeps the few plot colours exact).
COLORS = 256


def shrink_png(src: Path, dest: Path, width: int = WIDTH) -> Path:
    """Resize ``src`` to ``width`` px (aspect kept, never upscaled), quantise, save as ``dest``."""
    with Image.open(src) as im:
        im = im.convert("RGB")
        if im.width > width:
            im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
        im = im.quantize(colors=COLORS, method=Image.Quantize.FASTOCTREE)
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(dest, buf.getvalue())  # selfdistill_cli.files: atomic, link-safe


def make_gallery(src_dir, dest_dir, names=FIGURES, width: int = WIDTH) -> list[Path]:
    """Gallery PNGs for every figure in ``names`` whose ``NAME.png`` exists in ``src_dir``."""
    src_dir, dest_dir = Path(src_dir), Path(dest_dir)
    out = []
    for name in names:
        src = src_dir / f"{name}.png"
        if not src.exists():
            log(f"gallery: {src} missing, skipped")
            continue
        out.append(shrink_png(src, dest_dir / f"{name}.png", width))
    return out


def main(argv=None) -> int:
    parser = ArgumentParser(description="Write small README gallery PNGs.")
    parser.add_argument(
        "--src", type=nonempty_path, default=None, help="default ./selfdistill-figures"
    )
    parser.add_argument("--dest", type=nonempty_path, default=Path("docs/gallery"))
    parser.add_argument("--width", type=int, default=WIDTH)
    args = parser.parse_args(argv)
    if args.width < 100:
        parser.error("--width must be >= 100 pixels")
    try:
        check_writable_dir(args.dest, "--dest")
    except ValueError as exc:
        parser.error(str(exc))
    paths = make_gallery(args.src or default_out(), args.dest, FIGURES, args.width)
    for p in paths:
        log(f"gallery: {p} ({p.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
