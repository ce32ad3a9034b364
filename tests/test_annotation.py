import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from samprompt import PromptError, Segmenter
from samprompt.annotate.document import ImageAnnotation, safe_name
from samprompt.synthetic import make_scene


@pytest.fixture()
def ann(random_sam):
    return ImageAnnotation(Segmenter(random_sam), make_scene(4, size=(96, 128)).image, "../../etc/passwd")


def test_safe_names():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("a b/c?.png") == "c_.png"
    assert safe_name("..") == "image" and safe_name("C:\\x\\y.jpg") == "y.jpg"


def test_clicks_boxes_undo_redo_and_one_encoding(ann):
    ann.add_point(20, 30)
    ann.add_point(60, 40, positive=False)
    assert len(ann.objects) == 1 and ann.objects[0].point_labels == [1, 0] and ann.objects[0].mask.shape == (96, 128)
    ann.new_object("cat")
    ann.set_box((5, 5, 50, 60))
    assert len(ann.objects) == 2 and ann.objects[1].label == "cat"
    assert ann.undo() and ann.objects[1].box is None
    assert ann.undo() and len(ann.objects) == 1
    assert ann.redo() and len(ann.objects) == 2
    ann.rename(0, "dog")
    ann.delete(1)
    assert [o.label for o in ann.objects] == ["dog"]
    ann.clear()
    assert ann.objects == [] and ann.undo() and ann.objects[0].label == "dog"
    assert ann.seg.encoder_calls == 1
    with pytest.raises(PromptError, match="outside"):
        ann.add_point(500, 5)
    with pytest.raises(IndexError):
        ann.select(7)


def test_proposals_accept_discard(ann):
    props = ann.propose(points_per_side=4, pred_iou_thresh=-10, stability_score_thresh=-1, box_nms_thresh=1.0)
    n = len(props)
    assert n > 1
    ann.accept(0, "thing")
    ann.discard(0)
    assert len(ann.proposals) == n - 2 and ann.objects[0].mask is not None and ann.objects[0].points == []


def test_export_and_resume(ann, tmp_path, random_sam):
    ann.add_point(20, 30, label="a")
    ann.new_object("b")
    ann.set_box((40, 10, 120, 90))
    files = ann.export(tmp_path, categories=["a"])
    assert all(p.parent in (tmp_path, tmp_path / "labels") for p in files)
    assert (tmp_path / "passwd.annotation.json").exists() and (tmp_path / "passwd.png").exists()
    api = COCO(str(tmp_path / "passwd.coco.json"))
    anns = api.loadAnns(api.getAnnIds())
    assert [api.loadCats(a["category_id"])[0]["name"] for a in anns] == ["a", "b"]
    masks = ann.masks()
    assert np.array_equal(np.stack([api.annToMask(a).astype(bool) for a in anns]), masks)
    # a "restarted server": a new annotation of the same image resumes
    again = ImageAnnotation(Segmenter(random_sam), ann.image, "passwd")
    assert again.load(tmp_path)
    assert [o.label for o in again.objects] == ["a", "b"] and np.array_equal(again.masks(), masks)
    assert again.objects[1].box == (40, 10, 120, 90)
    doc = json.loads((tmp_path / "passwd.annotation.json").read_text())
    assert doc["image_size"] == [96, 128] and doc["objects"][0]["labels"] == [1]


def test_brush_and_eraser_edit_on_top_of_sam_and_a_later_prompt_asks_first(ann):
    from samprompt.annotate.document import EditsWouldBeLost

    ann.set_box((10, 10, 60, 50))
    sam = ann.objects[0].mask.copy()
    ann.brush([(100.5, 80.5), (120.5, 80.5)], radius=3)  # a stroke away from the SAM mask
    m = ann.objects[0].mask
    new = m & ~sam
    assert new[80, 100] and new[80, 120] and new[80, 110] and not new[80, 126] and not new[90, 110]
    assert np.array_equal(m & sam, sam) and ann.objects[0].edited  # painted on top: nothing of SAM's lost
    ann.brush([(110.5, 80.5)], radius=2, erase=True)
    assert not ann.objects[0].mask[80, 110] and ann.objects[0].mask[80, 100]
    with pytest.raises(EditsWouldBeLost, match="by hand"):
        ann.add_point(30, 30)
    assert ann.objects[0].points == []  # refused: nothing changed
    ann.add_point(30, 30, force=True)
    assert not ann.objects[0].edited and not ann.objects[0].mask[80, 100]
    assert ann.undo() and ann.objects[0].edited and not ann.objects[0].mask[80, 110]
    with pytest.raises(PromptError):
        ann.brush([], radius=3)
    ann.brush([(10, 10), (1e12, -1e12)], radius=1e9)  # absurd values from a page: clipped, no overflow
    assert ann.objects[0].mask.all()


def test_polygons_round_trip_keeps_holes_and_edits_apply(ann):
    import cv2

    ring = np.zeros((96, 128), np.uint8)
    cv2.circle(ring, (60, 48), 30, 1, -1)
    cv2.circle(ring, (60, 48), 12, 0, -1)
    ann.new_object("donut")
    ann.objects[0].mask = ring.astype(bool)
    polys = ann.polygons()
    assert len(polys) == 2  # the outer ring and the hole
    ann.set_polygons(polys)
    got = ann.objects[0].mask
    assert not got[48, 60] and got[48, 35]  # the hole stays a hole
    assert (got & ring.astype(bool)).sum() / (got | ring.astype(bool)).sum() > 0.93
    ann.set_polygons([[[0.5, 0.5], [19.5, 0.5], [19.5, 19.5], [0.5, 19.5]]])  # vertices: the outline's pixel centres
    assert ann.objects[0].mask[:20, :20].all() and ann.objects[0].mask.sum() == 400 and ann.objects[0].edited
    with pytest.raises(PromptError, match="three"):
        ann.set_polygons([[[0, 0], [5, 5]]])


def test_proposals_that_repeat_an_object_are_dropped_and_undo_of_accept_restores(ann):
    kw = dict(points_per_side=4, pred_iou_thresh=-10, stability_score_thresh=-1, box_nms_thresh=1.0)
    from samprompt.masks import iou

    first = ann.propose(**kw)
    taken = ann.accept(0, "thing").mask
    again = ann.propose(**kw)
    repeats = sum(iou(m, taken) >= 0.5 or (m & taken).sum() >= 0.8 * m.sum() for m in first)
    assert repeats >= 1 and len(again) == len(first) - repeats  # what repeats an object is not proposed again
    assert all(iou(m, taken) < 0.5 and (m & taken).sum() < 0.8 * m.sum() for m in again)
    n = len(again)
    ann.accept(0, "other")
    assert len(ann.proposals) == n - 1
    assert ann.undo() and len(ann.proposals) == n and len(ann.objects) == 1  # the proposal is back
    assert ann.redo() and len(ann.proposals) == n - 1 and len(ann.objects) == 2


def test_points_on_the_far_edge_are_inside(ann):
    ann.add_point(128, 96)  # (W, H) is a valid point: pixel coordinates are continuous
    assert ann.objects[0].points == [(128.0, 96.0)]


def test_per_image_coco_names_the_real_file_and_empty_masks_are_in_no_export(random_sam, tmp_path):
    """Issue 30, items 3 and 5: coffee.jpg is coffee.jpg in its COCO file; an emptied object is in no format."""
    ann = ImageAnnotation(Segmenter(random_sam), make_scene(5, size=(96, 128)).image, "coffee.jpg")
    ann.new_object("cup")
    ann.set_box((10, 10, 60, 70))
    ann.new_object("ghost")
    ann.set_box((70, 20, 120, 80))
    ann.objects[1].mask = np.zeros_like(ann.objects[1].mask)  # everything erased
    assert ann.empty_objects() == 1
    ann.export(tmp_path, categories=["cup", "ghost"])
    api = COCO(str(tmp_path / "coffee.coco.json"))
    assert [img["file_name"] for img in api.dataset["images"]] == ["coffee.jpg"]
    anns = api.loadAnns(api.getAnnIds())
    assert len(anns) == 1 and anns[0]["area"] > 0  # no zero-area annotation
    assert len((tmp_path / "labels" / "coffee.txt").read_text().splitlines()) == len(anns)


def test_the_export_says_what_each_format_loses(random_sam, tmp_path):
    """Issue 30, items 6 and 12: overlapping objects and what YOLO's polygons lose are said, not silent."""
    from samprompt.annotate.session import Annotator, SessionState
    from samprompt.export import export_losses

    h, w = 96, 128
    yy, xx = np.mgrid[:h, :w]
    big = (np.abs(yy - 48) < 30) & (np.abs(xx - 64) < 40)
    inner = (np.abs(yy - 48) < 10) & (np.abs(xx - 64) < 10)  # drawn later: on top of big
    under = (np.abs(yy - 50) < 5) & (np.abs(xx - 60) < 5)  # wholly under inner, and drawn before it
    loss = export_losses(np.stack([big, under, inner]))
    assert loss["label_map_partial"] == 1 and loss["label_map_hidden"] == 1
    assert loss["label_map_kept"] < 1 and loss["yolo_worst"] > 0.9
    app = Annotator(Segmenter(random_sam), None, tmp_path / "out")
    st = SessionState()
    app._open(st, make_scene(1, size=(h, w)).image, "shapes.png", "shapes")
    for m in (big, under, inner):
        st.ann.new_object("object")
        st.ann.objects[-1].mask = m
    note = app.export_note(st)
    assert "1 in part and 1 not at all" in note


def test_yolo_labels_pair_with_their_images_by_yolo_rules(random_sam, tmp_path):
    """Issue 30, item 12: labels/STEM.txt for images/STEM.ext (YOLO's img2label_paths), also where samprompt's own
    keys carry a hash; two images sharing a stem are named in the export's note."""
    import os

    import cv2

    from samprompt.annotate.session import Annotator, SessionState

    def img2label(path: str) -> str:  # Ultralytics' rule, written out
        sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
        return sb.join(path.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"

    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("x y.png", "x_y.png", "cat.jpg", "cat.png"):
        cv2.imwrite(str(folder / name), make_scene(len(name), size=(64, 80)).image)
    app = Annotator(Segmenter(random_sam), folder, tmp_path / "out")
    notes = {}
    for k in range(len(app.entries)):
        st = SessionState()
        app.open_index(st, k)
        st.ann.set_box((5, 5, 60, 50))
        app.export(st)
        notes[st.ann.file_name] = app.export_note(st)
    for name in ("x y.png", "x_y.png", "cat.png"):
        expected = Path(img2label(str(tmp_path / "images" / name))).name
        assert (tmp_path / "out" / "labels" / expected).exists(), expected
    assert "share the stem 'cat'" in notes["cat.jpg"] and "share the stem" not in notes["x y.png"]
    # item 3: each per-image COCO file names its own image, also where keys carry a hash, and for an upload
    named = {COCO(str(f)).dataset["images"][0]["file_name"] for f in (tmp_path / "out").glob("*.coco.json")}
    assert named == {"x y.png", "x_y.png", "cat.jpg", "cat.png"}
    st = SessionState()
    cv2.imwrite(str(tmp_path / "upload.jpg"), make_scene(9, size=(64, 80)).image)
    app.open_upload(st, str(tmp_path / "upload.jpg"))
    st.ann.set_box((5, 5, 60, 50))
    app.export(st)
    (up,) = (tmp_path / "out").glob("upload-*.coco.json")
    assert COCO(str(up)).dataset["images"][0]["file_name"] == "upload.jpg"


def test_a_click_costs_the_same_with_25_objects_on_the_image(random_sam, tmp_path, monkeypatch):
    """Issue 30: click latency grew with the objects on an image (every save re-encoded every mask, every undo
    step copied every mask). Now a click encodes only the mask it changed and copies none."""
    import samprompt.annotate.document as annotation_module

    ann = ImageAnnotation(Segmenter(random_sam), make_scene(6, size=(128, 128)).image, "many")
    for k in range(25):
        ann.new_object("object")
        ann.add_point(5 + 4 * k, 64)
    ann.save(tmp_path)
    encoded = []
    real = annotation_module.mask_to_rle
    monkeypatch.setattr(annotation_module, "mask_to_rle", lambda m: encoded.append(1) or real(m))
    before = [o.mask for o in ann.objects]
    ann.add_point(100, 100)  # one more click on the last object
    undo_step = ann._undo[-1][0]
    assert all(a.mask is b for a, b in zip(undo_step, before))  # the undo step shares the masks, copies none
    ann.save(tmp_path)
    assert len(encoded) == 1  # only the changed mask is encoded again
    assert ann.undo() and ann.objects[-1].mask is before[-1]


def test_hidden_and_locked_objects(ann, tmp_path):
    """Issue 30: a locked object refuses every edit; a hidden one is saved but neither drawn nor picked."""
    from samprompt.annotate.canvas import label_runs, runs_to_labels

    ann.set_box((10, 10, 60, 50), label="cell")
    before = ann.objects[0].mask.copy()
    assert ann.toggle(0, "locked") is True
    for edit in (lambda: ann.add_point(30, 30), lambda: ann.set_box((0, 0, 20, 20)),
                 lambda: ann.brush([(30, 30)], 5), lambda: ann.delete(0), lambda: ann.rename(0, "x"),
                 lambda: ann.set_polygons([[(0, 0), (20, 0), (20, 20)]])):
        with pytest.raises(PromptError, match="locked"):
            edit()
    assert (ann.objects[0].mask == before).all()
    ann.clear()  # keeps what is locked
    assert len(ann.objects) == 1
    assert ann.undo() and ann.undo() and not ann.objects[0].locked  # the lock is an undo step
    ann.toggle(0, "hidden")
    labels = runs_to_labels(label_runs(ann, ["cell"]), *ann.size)
    assert not labels.any()  # not drawn
    ann.save(tmp_path)
    saved = json.loads((tmp_path / f"{ann.name}.annotation.json").read_text())
    assert saved["objects"][0]["hidden"] is True and "locked" not in saved["objects"][0]
    again = ImageAnnotation(ann.seg, ann.image, ann.file_name)
    assert again.load(tmp_path) and again.objects[0].hidden and (again.objects[0].mask == before).all()


def test_a_polygon_drawn_from_scratch_is_a_new_object_kept_as_drawn(ann):
    ann.set_box((10, 10, 60, 50), label="a")
    obj = ann.draw_polygon([(70, 20), (110, 20), (110, 60), (70, 60)], label="b")
    assert ann.current == 1 and obj.label == "b" and obj.edited
    # the pixels the outline runs through belong to the object, as in every vertex edit (see polygons())
    assert obj.mask.sum() == 41 * 41 and obj.mask[20:61, 70:111].all()
    assert ann.polygons() == [[[70, 20], [110, 20], [110, 60], [70, 60]]]  # not re-traced
    with pytest.raises(PromptError, match="three"):
        ann.draw_polygon([(0, 0), (5, 5)])
    with pytest.raises(PromptError, match="no pixel"):
        ann.draw_polygon([(128, 0), (128, 10), (128, 5)])  # on the right edge: outside every pixel
    assert ann.undo() and len(ann.objects) == 1


def test_objects_of_one_class_get_shades_of_its_colour():
    from types import SimpleNamespace

    from samprompt.annotate.canvas import class_colour, instance_colours

    objs = [SimpleNamespace(label=c) for c in ("cat", "cat", "dog", "cat", "cat")]
    shades = instance_colours(objs, ["cat", "dog"])
    cats = [shades[i] for i in (0, 1, 3, 4)]
    assert shades[0] == class_colour(["cat", "dog"], "cat") and shades[2] == class_colour(["cat", "dog"], "dog")
    assert len(set(cats)) == 4  # every cat told apart
    assert min(sum(abs(a - b) for a, b in zip(p, q)) for i, p in enumerate(cats) for q in cats[i + 1:]) > 40
