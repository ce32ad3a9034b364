import numpy as np
import pytest

from samprompt import Segmenter, evaluate_folder, evaluate_image
from samprompt.images import iter_labelled, read_image
from samprompt.simulate import box_from_mask, center_point, next_click
from samprompt.synthetic import make_scene, write_dataset


def test_box_from_mask_and_jitter(rng):
    m = np.zeros((50, 60), bool)
    m[10:20, 30:45] = True
    assert box_from_mask(m).tolist() == [30, 10, 44, 19]
    j = box_from_mask(m, 0.1, rng)
    assert np.all(j >= 0) and j[2] > j[0] and j[3] > j[1] and not np.array_equal(j, box_from_mask(m))
    with pytest.raises(ValueError):
        box_from_mask(np.zeros((4, 4), bool))


def test_center_point_is_farthest_from_boundary():
    m = np.zeros((40, 40), bool)
    m[5:35, 5:15] = True  # a tall bar
    x, y = center_point(m)
    assert 9 <= x <= 10 and 9 <= y <= 30 and m[int(y), int(x)]  # on the ridge


def test_next_click_targets_largest_error():
    gt = np.zeros((40, 40), bool)
    gt[5:35, 5:35] = True
    pred = gt.copy()
    pred[5:35, 20:35] = False  # big miss on the right
    pred[0:3, 0:3] = True  # small false positive
    (x, y), lab = next_click(pred, gt)
    assert lab == 1 and gt[int(y), int(x)] and not pred[int(y), int(x)]
    pred2 = gt.copy()
    pred2[36:40, :] = True
    (x, y), lab = next_click(pred2, gt)
    assert lab == 0 and pred2[int(y), int(x)] and not gt[int(y), int(x)]


class Oracle(Segmenter):
    """A segmenter that returns the ground-truth object under each prompt's box/point."""

    def __init__(self, labels):
        self.labels = labels

    def predict(self, image, prompts, **kw):
        from samprompt.segmenter import Result

        out = []
        for p in prompts:
            if p.box is not None:
                cx, cy = (p.box[0] + p.box[2]) / 2, (p.box[1] + p.box[3]) / 2
            else:
                cx, cy = p.points[0]
            k = self.labels[int(cy), int(cx)]
            m = self.labels == k if k else np.zeros(self.labels.shape, bool)
            out.append(Result(m[None], np.ones(1), np.zeros((1, 64, 64), np.float32), p))
        return out


def test_evaluate_image_with_an_oracle_is_perfect_for_convex_objects():
    labels = np.zeros((64, 64), np.int32)
    labels[5:25, 5:25] = 1
    labels[30:60, 30:50] = 2
    image = np.zeros((64, 64, 3), np.uint8)
    oracle = Oracle(labels)
    for mode in ("box", "point", "clicks"):
        s = evaluate_image(oracle, image, labels, prompt=mode, clicks=3)
        assert s["iou"] == [1.0, 1.0] and s["dice"] == [1.0, 1.0]
        assert len(s["click_iou"]) == (3 if mode == "clicks" else 1)


def test_evaluate_folder_counts_objects_and_records_failures(tmp_path, random_sam):
    data = write_dataset(tmp_path / "d", 3)
    (data / "images" / "broken.png").write_bytes(b"not a png")
    (data / "masks" / "broken.png").write_bytes(b"not a png")
    seg = Segmenter(random_sam)
    rep = evaluate_folder(seg, data, prompt="clicks", clicks=2, progress=False)
    assert rep.n_images == 3 and "broken" in rep.failed
    assert rep.n_objects == sum(make_scene(i).num_objects for i in range(3))
    assert len(rep.per_click_mIoU) == 2 and 0 <= rep.mIoU <= 1
    with pytest.raises(Exception, match="labelled folder"):
        evaluate_folder(seg, tmp_path, progress=False)


def test_by_size_bins_objects_by_coco_area():
    from samprompt.evaluation import by_size

    # a 10x10 (small), a 40x40 (medium) and a 100x100 (large) object; the oracle
    # misses the small one, so only the "small" bin drops
    labels = np.zeros((200, 200), np.int32)
    labels[2:12, 2:12] = 1
    labels[20:60, 20:60] = 2
    labels[90:190, 90:190] = 3
    oracle = Oracle(np.where(labels == 1, 0, labels))
    s = evaluate_image(oracle, np.zeros((200, 200, 3), np.uint8), labels, prompt="box")
    assert s["area"] == [100, 1600, 10000]
    assert s["iou"][0] == 0.0 and s["iou"][1:] == [1.0, 1.0]
    b = by_size(s["iou"], s["area"])
    assert b == {"small": {"n": 1, "mIoU": 0.0}, "medium": {"n": 1, "mIoU": 1.0}, "large": {"n": 1, "mIoU": 1.0}}
    assert by_size([], [])["small"] == {"n": 0, "mIoU": None}


def test_evaluate_folder_reports_by_size(tmp_path, random_sam):
    data = write_dataset(tmp_path / "d", 2)
    rep = evaluate_folder(Segmenter(random_sam), data, prompt="box", progress=False)
    assert sum(v["n"] for v in rep.by_size.values()) == rep.n_objects
    weighted = sum(v["n"] * v["mIoU"] for v in rep.by_size.values() if v["n"])
    assert weighted / rep.n_objects == pytest.approx(rep.mIoU)


class WrongChoice(Oracle):
    """Three candidates: the true object scored low, an empty mask scored high."""

    def predict(self, image, prompts, **kw):
        from samprompt.segmenter import Result

        assert kw.get("best_only") is False or kw.get("multimask") is False
        out = []
        for r in super().predict(image, prompts):
            empty = np.zeros_like(r.masks[0])
            masks = np.stack([empty, r.masks[0], empty])
            out.append(Result(masks, np.array([0.9, 0.1, 0.2]), np.zeros((3, 64, 64), np.float32), r.prompt))
        return out


def test_point_mode_reports_the_oracle_apart_from_the_iou_heads_choice(tmp_path):
    labels = np.zeros((64, 64), np.int32)
    labels[5:25, 5:25] = 1
    s = evaluate_image(WrongChoice(labels), np.zeros((64, 64, 3), np.uint8), labels, prompt="point")
    assert s["iou"] == [0.0] and s["oracle_iou"] == [1.0]
    assert "oracle_iou" not in evaluate_image(Oracle(labels), np.zeros((64, 64, 3), np.uint8), labels, prompt="box")
    data = write_dataset(tmp_path / "d", 1)
    (_, _, mask_path), = iter_labelled(data)
    lab = read_image(mask_path)
    rep = evaluate_folder(WrongChoice(lab), data, prompt="point", progress=False)
    assert rep.mIoU == 0.0 and rep.oracle_mIoU == pytest.approx(1.0)


def test_evaluate_folder_takes_its_own_size_bins(tmp_path, random_sam):
    data = write_dataset(tmp_path / "d", 2)
    bins = {"tiny": (0, 100), "rest": (100, float("inf"))}
    rep = evaluate_folder(Segmenter(random_sam), data, prompt="box", progress=False, size_ranges=bins)
    assert set(rep.by_size) == {"tiny", "rest"}
    assert sum(v["n"] for v in rep.by_size.values()) == rep.n_objects
