"""Fuzzing the image-reading path: any bytes give an 8-bit RGB array or an ImageError, nothing else."""
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tripled.data.images import ImageError, read_image, read_thumbnail

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.*")  # damaged files make Pillow warn
FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F")
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
SAVES = {  # which modes each format can hold
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"},
    "JPEG": {"L", "RGB", "CMYK"},
    "BMP": {"1", "L", "P", "RGB"},
    "TIFF": set(MODES),
    "WEBP": {"RGB", "RGBA"},
}


@st.composite
def encoded_images(draw):
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(sorted(SAVES[fmt])))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode if mode not in
                                                                                   ("I;16", "I", "F") else "L")
    if mode in ("I;16", "I", "F"):
        img = Image.fromarray((np.asarray(img).astype(np.uint16) * 257).astype(
            {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return fmt, (h, w), buf.getvalue()


def _check(path, shape=None, max_pixels=200_000_000):
    """Both readers give uint8 RGB (of `shape`, when given) or an ImageError with a known reason."""
    for read, size in ((read_image, shape), (lambda p, m: read_thumbnail(p, 8, m), (8, 8))):
        try:
            arr = read(path, max_pixels)
        except ImageError as e:
            assert e.reason in {"empty_file", "not_an_image", "truncated", "corrupt", "too_many_pixels"}
            assert shape is None or e.reason == "too_many_pixels"  # valid images are never refused otherwise
            continue
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3 and arr.size > 0
        assert shape is None or arr.shape[:2] == size


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(image=encoded_images(), max_pixels=st.sampled_from([1, 50, 200_000_000]))
def test_valid_images_of_every_mode_read_as_rgb(folder, image, max_pixels):
    fmt, (h, w), data = image
    path = folder / f"valid{FORMATS[fmt]}"
    path.write_bytes(data)
    _check(path, (h, w), max_pixels)
    if h * w <= max_pixels:
        read_image(path, max_pixels)  # within the limit, never refused


@FUZZ
@given(image=encoded_images(), edits=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=8)),
                                              max_size=4), cut=st.none() | st.floats(0, 1))
def test_damaged_images_read_or_raise_image_error(folder, image, edits, cut):
    fmt, _, data = image
    data = bytearray(data)
    for where, junk in edits:
        at = int(where * len(data))
        data[at:at + len(junk)] = junk
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = folder / f"damaged{FORMATS[fmt]}"
    path.write_bytes(bytes(data))
    _check(path)


@FUZZ
@given(data=st.binary(max_size=512), ext=st.sampled_from(sorted(FORMATS.values())),
       prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"RIFF"]))
def test_random_bytes_raise_image_error(folder, data, ext, prefix):
    path = folder / f"random{ext}"
    path.write_bytes(prefix + data)
    _check(path)
