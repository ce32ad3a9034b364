import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from samprompt import PromptError, Segmenter
from samprompt.annotation import ImageAnnotation, safe_name
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
