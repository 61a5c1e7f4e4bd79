from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from detector.errors import ImageError
from detector.postprocess import to_source
from detector.preprocess import PAD_VALUE, check_image, decode_image, letterbox, to_tensor, to_uint8_tensor


@pytest.mark.parametrize(("w", "h"), [(1920, 1080), (1080, 1920), (640, 640), (333, 101)])
def test_letterbox_round_trip(w: int, h: int) -> None:
    image = np.zeros((h, w, 3), np.uint8)
    out, lb = letterbox(image, 416)
    assert out.shape == (416, 416, 3)
    # Source corners and an inner box map into the input and back to where they came from.
    src = np.array([[0, 0, w, h], [w * 0.25, h * 0.4, w * 0.5, h * 0.9]], np.float32)
    inp = src.copy()
    inp[:, [0, 2]] = inp[:, [0, 2]] * lb.gain + lb.pad_x
    inp[:, [1, 3]] = inp[:, [1, 3]] * lb.gain + lb.pad_y
    assert inp.min() >= 0 and inp.max() <= 416
    np.testing.assert_allclose(to_source(inp, lb), src, atol=1e-3)


@pytest.mark.parametrize(
    ("w", "h", "shape"),
    [(1920, 1080, (384, 640)), (1280, 720, (384, 640)), (640, 480, (480, 640)), (1080, 1920, (640, 384))],
)
def test_letterbox_to_the_stride_pads_only_what_the_model_needs(
    w: int, h: int, shape: tuple[int, int]
) -> None:
    image = np.full((h, w, 3), 7, np.uint8)
    out, lb = letterbox(image, 640, stride=32)
    square, square_lb = letterbox(image, 640)
    assert out.shape[:2] == shape and lb.gain == square_lb.gain  # the same pixels, less padding
    assert (out == 7).sum() == (square == 7).sum()
    src = np.array([[0, 0, w, h], [w * 0.25, h * 0.4, w * 0.5, h * 0.9]], np.float32)
    inp = src.copy()
    inp[:, [0, 2]] = inp[:, [0, 2]] * lb.gain + lb.pad_x
    inp[:, [1, 3]] = inp[:, [1, 3]] * lb.gain + lb.pad_y
    np.testing.assert_allclose(to_source(inp, lb), src, atol=1e-3)


def test_letterbox_pads_grey_and_centres() -> None:
    image = np.full((1080, 1920, 3), 7, np.uint8)
    out, lb = letterbox(image, 416)
    assert lb.pad_x == 0 and lb.pad_y == pytest.approx((416 - 234) / 2, abs=1)
    assert (out[0] == PAD_VALUE).all() and (out[-1] == PAD_VALUE).all()
    assert (out[208] == 7).all()


def test_to_tensor_is_rgb_nchw_unit_range() -> None:
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 0] = 255  # blue
    t = to_tensor([bgr])
    assert t.shape == (1, 3, 4, 4) and t.dtype == np.float32
    assert t[0, 2].max() == 1.0 and t[0, 0].max() == 0.0  # blue is the last RGB channel


def test_uint8_tensor_is_the_rgb_pixels_in_nchw() -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (37, 53, 3), dtype=np.uint8) for _ in range(2)]
    out = to_uint8_tensor(images)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 37, 53)
    assert np.array_equal(out, np.stack([img[..., ::-1] for img in images]).transpose(0, 3, 1, 2))


def test_to_tensor_matches_ultralytics_arithmetic_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (37, 53, 3), dtype=np.uint8) for _ in range(2)]
    reference = np.stack([img[..., ::-1] for img in images]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    assert np.array_equal(to_tensor(images), reference)


def _jpeg(image: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", **kw)
    return buf.getvalue()


def test_decode_applies_exif_orientation() -> None:
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    decoded = decode_image(_jpeg(image, exif=exif.tobytes()))
    assert decoded.shape[:2] == (40, 20)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
@pytest.mark.parametrize("size", [(40, 20), (1283, 722), (1001, 1002), (64, 64)])
def test_check_gives_the_size_decode_gives(size: tuple[int, int], orientation: int) -> None:
    # The cheap check at upload and the worker's full decode agree on the frame's size (what locating
    # a detection on the ground depends on), rotated or not, also when 1/8 scale cannot tell.
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _jpeg(Image.new("RGB", size, (90, 90, 90)), exif=exif.tobytes())
    height, width = decode_image(data).shape[:2]
    assert check_image(data) == (width, height)
    png = cv2.imencode(".png", np.zeros((size[1], size[0], 3), np.uint8))[1].tobytes()
    assert check_image(png) == size


def test_check_refuses_what_decode_refuses() -> None:
    data = _jpeg(Image.new("RGB", (640, 480), (10, 200, 30)), quality=95)
    for cut in (len(data) // 3, len(data) - 50):
        with pytest.raises(ImageError, match="corrupt or truncated"):
            check_image(data[:cut])
    for garbage in (b"", b"this is text, not an image"):
        with pytest.raises(ImageError):
            check_image(garbage)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is text, not an image", "not a readable image"),
    ],
)
def test_decode_rejects_garbage(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_image(data)


def test_decode_rejects_truncated_jpeg() -> None:
    data = _jpeg(Image.new("RGB", (64, 64), (10, 200, 30)))
    with pytest.raises(ImageError):
        decode_image(data[: len(data) // 3])


def test_decode_refuses_huge_header_before_decoding() -> None:
    # A 20000x20000 PNG header with almost no data: refused from the header alone.
    ok, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    assert ok
    raw = bytearray(png.tobytes())
    raw[16:24] = (20000).to_bytes(4, "big") + (20000).to_bytes(4, "big")  # IHDR width/height
    raw[29:33] = zlib.crc32(bytes(raw[12:29])).to_bytes(4, "big")  # keep the chunk valid
    with pytest.raises(ImageError, match="too large"):
        decode_image(bytes(raw))
