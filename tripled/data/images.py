"""Decoding image files: any supported format to 8-bit RGB, EXIF-rotated, with a named reason when a
file cannot be used; thumbnails that decode JPEGs reduced."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class ImageError(ValueError):
    """An image file that cannot be used; `reason` is a short name for data/rejects.csv."""

    def __init__(self, path: Path | str, reason: str, detail: str = ""):
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))
        self.path, self.reason = str(path), reason


# Only these decoders run: Pillow would otherwise also hand files to plugins such as EPS, which
# calls Ghostscript on the file's content. (JPEG includes the multi-picture JPEGs of cameras.)
FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP")
# How a file of each format starts, and how a complete PNG or JPEG ends: a file that starts like
# an image but does not decode is truncated when its end marker is missing, else corrupt.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"),
               (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"RIFF", "WEBP"))
_END_MARKERS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9"}


def _failure(path: Path, error: Exception) -> ImageError:
    """Name why `path` did not decode: not an image at all, cut short, or damaged inside."""
    with open(path, "rb") as f:
        head = f.read(16)
        f.seek(max(0, f.seek(0, os.SEEK_END) - 64))
        tail = f.read()
    fmt = next((name for sig, name in _SIGNATURES if head.startswith(sig)), None)
    if fmt is None:
        return ImageError(path, "not_an_image", f"not a {'/'.join(FORMATS)} file")
    end = _END_MARKERS.get(fmt)
    if end is not None and not tail.rstrip(b"\x00").endswith(end):
        return ImageError(path, "truncated", f"{fmt} without its end marker: {error}")
    return ImageError(path, "corrupt", f"{type(error).__name__}: {error}")


def _open(path: Path, max_pixels: int) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = None  # our own limit below, checked before decoding
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # whatever another library set: a cut-short file is refused
    Image.init()  # registers the TIFF and WebP plugins, so that `formats` can name them
    try:
        empty = path.stat().st_size == 0
        img = None if empty else Image.open(path, formats=FORMATS)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        raise ImageError(path, "unreadable", str(e)) from None
    except Exception as e:
        raise _failure(path, e) from None
    if img is None:
        raise ImageError(path, "empty_file")
    if img.width * img.height > max_pixels:
        img.close()
        raise ImageError(path, "too_many_pixels", f"{img.width}x{img.height} > data.max_pixels={max_pixels}")
    return img


def _to_rgb(img: Image.Image) -> np.ndarray:
    """8-bit RGB: EXIF orientation applied, 16-bit scaled down, alpha composited on white."""
    img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit modes are always 0..65535 (a dark 16-bit image is not 8-bit data); plain "I" has no fixed range.
        full = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / full * 255 + 0.5, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return np.asarray(img.convert("RGB"))


def read_image(path: Path | str, max_pixels: int = 200_000_000) -> np.ndarray:
    """Decode any supported image to HxWx3 uint8 RGB, EXIF-rotated; ImageError if unusable."""
    path = Path(path)
    with _open(path, max_pixels) as img:
        try:
            return _to_rgb(img)
        except Exception as e:
            raise _failure(path, e) from None


@lru_cache(maxsize=4)
def read_image_cached(path: str, max_pixels: int = 200_000_000) -> np.ndarray:
    """read_image for consecutive tiles of one source image: decode it once (callers must not write)."""
    img = read_image(path, max_pixels)
    img.flags.writeable = False
    return img


def read_thumbnail(path: Path | str, size: int, max_pixels: int = 200_000_000) -> np.ndarray:
    """size x size RGB thumbnail of a whole image; JPEGs decode reduced."""
    path = Path(path)
    with _open(path, max_pixels) as img:
        try:
            if img.format == "JPEG":
                img.draft("RGB", (size, size))  # DCT-domain downscale: far cheaper than a full decode
            return resize(_to_rgb(img), size)
        except Exception as e:
            raise _failure(path, e) from None


def resize(img: Image.Image | np.ndarray, size: int) -> np.ndarray:
    """Squash to size x size: the ViT judges complexity from a fixed-size thumbnail."""
    img = img if isinstance(img, Image.Image) else Image.fromarray(img)
    if img.size == (size, size):
        return np.asarray(img)
    return np.asarray(img.resize((size, size), Image.BICUBIC, reducing_gap=3.0))


def crop(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return img[y:y + h, x:x + w]
