import numpy as np
import pytest
from pycocotools import mask as mask_utils

from samprompt import (
    clean_mask,
    dice,
    from_label_map,
    iou,
    mask_to_polygons,
    mask_to_rle,
    overlay,
    rle_to_mask,
    to_label_map,
)


def test_clean_mask_removes_islands_and_fills_holes():
    m = np.zeros((40, 40), bool)
    m[5:30, 5:30] = True
    m[15:17, 15:17] = False  # a 4-px hole
    m[35, 35] = True  # a 1-px island
    out = clean_mask(m, min_island=5, max_hole=10)
    assert not out[35, 35] and out[15:17, 15:17].all()
    assert out.sum() == 25 * 25
    # big holes and big islands stay
    kept = clean_mask(m, min_island=1, max_hole=2)
    assert kept[35, 35] and not kept[15, 15]
    # background touching the border is never a hole
    edge = np.ones((10, 10), bool)
    edge[0, :3] = False
    assert not clean_mask(edge, max_hole=100)[0, 0]


def test_label_map_round_trip(rng):
    masks = np.zeros((3, 20, 30), bool)
    masks[0, :10] = True
    masks[1, 5:15, 10:20] = True
    masks[2, 18:, 25:] = True
    lab = to_label_map(masks)
    assert lab.dtype == np.uint8 and lab[7, 12] == 2 and lab[2, 2] == 1 and lab[19, 29] == 3
    back, ids = from_label_map(lab)
    assert ids.tolist() == [1, 2, 3] and back[1].sum() == masks[1].sum()
    assert to_label_map(np.zeros((300, 4, 4), bool)).dtype == np.uint16


def test_rle_matches_pycocotools(rng):
    m = rng.random((37, 53)) > 0.6
    rle = mask_to_rle(m)
    ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    assert rle["counts"] == ref["counts"].decode() and rle["size"] == [37, 53]
    assert np.array_equal(rle_to_mask(rle), m)
    raw = {"size": [2, 2], "counts": [1, 2, 1]}  # uncompressed COCO RLE
    assert rle_to_mask(raw).tolist() == [[False, True], [True, False]]


def test_polygons_trace_the_mask():
    import cv2

    m = np.zeros((50, 60), bool)
    cv2.circle(m.view(np.uint8), (30, 25), 15, 1, -1)
    m = m.astype(bool)
    polys = mask_to_polygons(m)
    assert len(polys) == 1
    back = np.zeros((50, 60), np.uint8)
    cv2.fillPoly(back, [polys[0].astype(np.int32)], 1)
    assert iou(back.astype(bool), m) > 0.97
    assert len(mask_to_polygons(m, tolerance=2.0)[0]) < len(polys[0])


def test_overlay_and_metrics():
    img = np.zeros((10, 10, 3), np.uint8)
    m = np.zeros((1, 10, 10), bool)
    m[0, 2:8, 2:8] = True
    out = overlay(img, m, points=[(np.array([[5, 5]]), np.array([1]))], boxes=[np.array([2, 2, 7, 7])])
    assert out.shape == img.shape and out[5, 5].any() and not out[0, 9].any()
    assert iou(m[0], m[0]) == 1.0 and dice(m[0], ~m[0]) == 0.0
    assert iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    with pytest.raises(ValueError):
        to_label_map(np.zeros((4, 4), bool))


def test_drop_repeats_keeps_the_best_of_equal_masks_and_drops_slivers():
    from samprompt.masks import drop_repeats

    a = np.zeros((20, 20), bool)
    a[2:10, 2:10] = True
    b = np.zeros((20, 20), bool)
    b[12:18, 12:18] = True
    sliver = np.zeros((20, 20), bool)
    sliver[0, 15:19] = True
    masks = np.stack([a, a, b, a, sliver, b])
    keep = drop_repeats(masks, np.array([0.5, 0.9, 0.7, 0.6, 0.99, 0.8]), min_area=9)
    assert keep.tolist() == [1, 5]  # one a (the best), one b (the best), no 4-px sliver
