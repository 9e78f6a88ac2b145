"""Image file extensions: the formats normstyle writes, and the files it picks out of folders.

Standard library only: the CLI checks file names without importing torch or Pillow.
"""
from __future__ import annotations

# The extension of an output path picks the format Pillow writes.
WRITE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF",
                 ".tiff": "TIFF", ".bmp": "BMP"}
# The formats normstyle both reads and writes; folders of training, evaluation and style images
# are listed by these.
IMAGE_EXTENSIONS = frozenset(WRITE_FORMATS)
# The photos a stylize/batch run picks out of a folder: also formats Pillow only reads (their
# outputs are written in a format of WRITE_FORMATS).
INPUT_EXTENSIONS = IMAGE_EXTENSIONS | {".gif", ".ppm", ".pgm", ".pbm", ".tga", ".jp2", ".heic", ".heif",
                                       ".avif"}
