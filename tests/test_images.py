from pathlib import Path

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


def test_normalisers():
    from samprompt import FixedStretch, Percentile, Window

    hu = np.array([[-1000.0, -160.0, 140.0, 240.0, 3000.0]])
    soft = Window.from_level(400, 40)  # [-160, 240]
    assert (soft.lo, soft.hi) == (-160.0, 240.0)
    assert soft(hu).tolist() == [[0, 0, 191, 255, 255]]
    assert to_rgb_uint8(hu, normalize=soft)[0, :, 0].tolist() == [0, 0, 191, 255, 255]
    bands = np.stack([np.full((2, 2), 150.0), np.full((2, 2), 1050.0)], -1)
    assert FixedStretch([0, 1000], [200, 1200])(bands)[0, 0].tolist() == [191, 64]
    with pytest.raises(ImageError, match="statistics for 2 channels, the image has 3"):
        FixedStretch([0, 0], [1, 1])(np.zeros((2, 2, 3)))
    six = np.arange(6 * 16, dtype=np.uint16).reshape(4, 4, 6)
    assert Percentile(0, 100)(six).shape == six.shape  # any channel count inside a normaliser
    with pytest.raises(ImageError, match="6 channels; choose three bands"):
        to_rgb_uint8(six)
    with pytest.raises(ImageError, match="hi > lo"):
        Window(10, 10)


def test_folder_listing_and_label_maps(tmp_path):
    import cv2

    from samprompt import iter_labelled, list_images, read_label_map

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / "images" / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png"]
    assert list_images(tmp_path / "images" / "b.png") == [tmp_path / "images" / "b.png"]
    with pytest.raises(ImageError, match="no such file or folder"):
        list_images(tmp_path / "missing")
    labels = np.zeros((5, 6), np.uint16)
    labels[1:3, 2:4] = 300
    cv2.imwrite(str(tmp_path / "masks" / "b.png"), labels)
    assert [n for n, _, _ in iter_labelled(tmp_path)] == ["b"]
    assert np.array_equal(read_label_map(tmp_path / "masks" / "b.png"), labels)


def test_a_png_with_a_malformed_colour_profile_reads_without_a_libpng_warning():
    """Issue 32: scikit-image's page.png made libpng print a warning on the terminal (C stderr)."""
    import subprocess
    import sys

    import skimage

    page = Path(skimage.__file__).parent / "data" / "page.png"
    code = ("import sys, cv2; from samprompt.images import read_image; "
            "a = read_image(sys.argv[1]); b = cv2.imread(sys.argv[1], cv2.IMREAD_UNCHANGED) if len(sys.argv) > 2 "
            "else a; print(int((a == b).all()), a.shape)")
    ours = subprocess.run([sys.executable, "-c", code, str(page)], capture_output=True, text=True)
    assert ours.returncode == 0 and "libpng" not in ours.stderr and ours.stdout.startswith("1 (191, 384)")
    both = subprocess.run([sys.executable, "-c", code, str(page), "compare"], capture_output=True, text=True)
    assert both.stdout.startswith("1 ")  # the same pixels as OpenCV's own reading (which warns)
    assert "libpng" in both.stderr  # the file does hold the malformed profile


def test_a_dicom_file_is_named_as_such_and_not_decoded_as_a_tiff(tmp_path):
    """pydicom's CT_small.dcm has a TIFF-like preamble: OpenCV printed TIFF errors, then 'unsupported file type'."""
    import shutil

    import pydicom

    ct = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
    with pytest.raises(ImageError, match="is a DICOM file: samprompt medical reads DICOM series"):
        read_image(ct)
    bare = tmp_path / "slice_001"  # no suffix, as many scanners write them
    shutil.copy(ct, bare)
    with pytest.raises(ImageError, match="is a DICOM file"):
        read_image(bare)
