import numpy as np
import pytest

from samprompt import ImageError, read_image, to_rgb_uint8


@pytest.mark.parametrize("shape", [(20, 30), (20, 30, 1), (20, 30, 3), (20, 30, 4)])
def test_shapes_become_rgb(shape, rng):
    img = rng.integers(0, 256, shape).astype(np.uint8)
    out = to_rgb_uint8(img)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    if len(shape) == 3 and shape[2] >= 3:
        assert np.array_equal(out, img[..., :3])
    else:
        assert np.array_equal(out[..., 1], img.reshape(20, 30))


def test_dtype_normalisation(rng):
    f01 = rng.random((8, 8))
    assert np.array_equal(to_rgb_uint8(f01)[..., 0], (f01 * 255).round().astype(np.uint8))
    u16 = np.linspace(1000, 5000, 64).reshape(8, 8).astype(np.uint16)
    out = to_rgb_uint8(u16)[..., 0]
    assert out.min() == 0 and out.max() == 255 and np.all(np.diff(out.ravel().astype(int)) >= 0)
    assert to_rgb_uint8(np.full((4, 4), 7.5)).max() == 0  # constant float image
    assert to_rgb_uint8(np.ones((4, 4), bool)).min() == 255


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros((4, 4, 2), np.uint8), "C in"),
        (np.zeros((2, 4, 4, 3), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.zeros((4, 4), np.complex64), "dtype"),
    ],
)
def test_bad_images(bad, words):
    with pytest.raises(ImageError, match=words):
        to_rgb_uint8(bad)


def test_files(tmp_path, rng):
    import cv2

    img = rng.integers(0, 256, (12, 9, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img[..., ::-1])
    assert np.array_equal(to_rgb_uint8(tmp_path / "a.png"), img)
    u16 = (np.arange(12 * 9).reshape(12, 9) * 300).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "b.png"), u16)
    assert read_image(tmp_path / "b.png").dtype == np.uint16
    (tmp_path / "c.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ImageError, match="cannot decode"):
        to_rgb_uint8(tmp_path / "c.png")
    with pytest.raises(ImageError, match="not found"):
        to_rgb_uint8(tmp_path / "missing.png")
