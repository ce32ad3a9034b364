import numpy as np
import pytest

from samprompt.synthetic import STYLES, make_scene, write_dataset


@pytest.mark.parametrize("style", STYLES)
def test_deterministic_and_consistent(style):
    a, b = make_scene(7, style), make_scene(7, style)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert a.image.shape == (256, 256, 3) and a.image.dtype == np.uint8
    assert a.labels.dtype == np.int32 and a.num_objects >= 1
    ids = np.unique(a.labels)
    assert ids.tolist() == list(range(a.num_objects + 1))  # 0..n without gaps
    assert not np.array_equal(a.image, make_scene(8, style).image)


def test_styles_differ_in_character():
    dense = np.mean([make_scene(i, "rooftops").num_objects for i in range(5)])
    sparse = np.mean([make_scene(i, "default").num_objects for i in range(5)])
    assert dense > 2 * sparse
    us = make_scene(0, "ultrasound").image
    assert np.array_equal(us[..., 0], us[..., 1])  # grayscale


def test_sizes_and_errors():
    assert make_scene(0, size=(64, 100)).image.shape == (64, 100, 3)
    with pytest.raises(ValueError, match="unknown style"):
        make_scene(0, "moon")
    with pytest.raises(ValueError, match="at least 32"):
        make_scene(0, size=8)


def test_write_dataset(tmp_path):
    import cv2

    out = write_dataset(tmp_path / "d", 3, seed=10)
    imgs = sorted((out / "images").glob("*.png"))
    masks = sorted((out / "masks").glob("*.png"))
    assert [p.name for p in imgs] == [p.name for p in masks] == [f"default_{i:06d}.png" for i in (10, 11, 12)]
    lab = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(lab, make_scene(10).labels)
