import json

import cv2
import numpy as np
from pycocotools.coco import COCO

from samprompt import CocoWriter, export_png, export_yolo, iou, yolo_lines
from samprompt.io import atomic_write_text
from samprompt.outputs import LEDGER
from samprompt.synthetic import make_scene


def test_coco_export_reads_back_with_pycocotools(tmp_path):
    coco = CocoWriter(categories=["thing"])
    scenes = [make_scene(i, size=(96, 128)) for i in range(3)]
    for i, s in enumerate(scenes):
        labels = ["thing"] * (s.num_objects - 1) + ["other"]
        coco.add_image(f"{i}.png", s.masks(), scores=np.linspace(1, 0.5, s.num_objects), labels=labels)
    path = coco.write(tmp_path / "coco.json")
    api = COCO(str(path))
    assert len(api.getImgIds()) == 3
    assert {c["name"] for c in api.loadCats(api.getCatIds())} == {"thing", "other"}
    for img_id, s in zip(api.getImgIds(), scenes):
        anns = api.loadAnns(api.getAnnIds(imgIds=img_id))
        assert len(anns) == s.num_objects
        for ann, gt in zip(anns, s.masks()):
            assert np.array_equal(api.annToMask(ann).astype(bool), gt)
            ys, xs = np.nonzero(gt)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert ann["area"] == gt.sum()


def test_png_export(tmp_path):
    s = make_scene(1, size=64)
    paths = export_png(tmp_path, "x", s.image, s.masks())
    lab = cv2.imread(str(paths[0]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(lab, s.labels.astype(np.uint8))
    assert cv2.imread(str(paths[1])).shape == (64, 64, 3)
    assert not list(tmp_path.glob(".*tmp*"))


def test_yolo_lines_rasterise_back(tmp_path):
    s = make_scene(5, size=(120, 160))
    path = export_yolo(tmp_path / "labels" / "a.txt", s.masks(), class_ids=range(s.num_objects))
    lines = path.read_text().splitlines()
    assert 1 <= len(lines) <= s.num_objects
    for line in lines:
        parts = line.split()
        cls = int(parts[0])
        xy = np.array(parts[1:], float).reshape(-1, 2)
        assert np.all((xy >= 0) & (xy <= 1))
        poly = (xy * [160, 120]).round().astype(np.int32)
        back = np.zeros((120, 160), np.uint8)
        cv2.fillPoly(back, [poly], 1)
        gt = s.masks()[cls]
        if gt.sum() > 200:  # compact objects rasterise back closely
            assert iou(back.astype(bool), gt) > 0.6
    assert yolo_lines(np.zeros((1, 10, 10), bool), [0]) == []


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_text(target, json.dumps({"a": 1}))

    class Boom(Exception):
        pass

    from samprompt.io import atomic_path

    try:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise Boom
    except Boom:
        pass
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir() if p.name != LEDGER] == ["out.json"]


def _rasterise_yolo(line: str, w: int, h: int) -> np.ndarray:
    """One YOLO-seg line back to a mask, as YOLO's loaders do: one polygon, cv2.fillPoly."""
    xy = np.array(line.split()[1:], float).reshape(-1, 2)
    back = np.zeros((h, w), np.uint8)
    cv2.fillPoly(back, [np.round(xy * [w, h]).astype(np.int32)], 1)
    return back.astype(bool)


def test_yolo_keeps_every_piece_and_every_hole_of_an_object():
    """Issue 30, item 6: two pieces, one of them a ring, come back from one YOLO line (one instance)."""
    h, w = 120, 160
    yy, xx = np.mgrid[:h, :w]
    ring = ((yy - 50) ** 2 + (xx - 50) ** 2 < 35 ** 2) & ((yy - 50) ** 2 + (xx - 50) ** 2 >= 15 ** 2)
    piece = (np.abs(yy - 90) < 15) & (np.abs(xx - 125) < 20)
    mask = ring | piece
    (line,) = yolo_lines(mask[None], [3])
    assert line.split()[0] == "3"
    back = _rasterise_yolo(line, w, h)
    assert iou(back, mask) > 0.93, iou(back, mask)
    assert not back[50, 50]  # the hole stays a hole
    assert back[90, 125]  # the second piece is there
    from samprompt.export import yolo_kept

    assert yolo_kept(mask) > 0.93
