"""Formats people move between tools: CVAT for images 1.1 XML and Label Studio task JSON, in and out.

Our encoders are checked against each tool's own code (label-studio-converter's brush RLE,
cvat-sdk's mask code), and the annotator's folder export is imported back exactly.
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from samprompt import SampromptError, Segmenter
from samprompt.annotate import cvat, label_studio
from samprompt.annotate.formats import open_labels
from samprompt.masks import iou
from samprompt.synthetic import make_scene

brush = pytest.importorskip("label_studio_converter.brush")
cvat_masks = pytest.importorskip("cvat_sdk.masks")


def _masks():
    """Generated objects, one touching the image's corner, and a real silhouette (scikit-image's horse)."""
    scene = make_scene(3, size=(90, 130))
    out = [m for m in scene.masks()]
    corner = np.zeros((90, 130), bool)
    corner[:20, :33] = True  # starts with foreground: CVAT's code then opens with an empty background run
    out.append(corner)
    try:
        from skimage.data import horse

        out.append(~horse().astype(bool))
    except ImportError:
        pass
    return out


def test_brush_rle_is_label_studios_own_byte_for_byte():
    rng = np.random.default_rng(0)
    noisy = rng.random((37, 51)) < 0.3
    for m in [*_masks(), noisy, np.zeros((8, 8), bool), np.ones((300, 300), bool)]:
        ours = label_studio.encode_rle(m)
        assert ours == brush.mask2rle(m.astype(np.uint8) * 255)
        back = brush.decode_rle(ours).reshape(*m.shape, 4)[:, :, 3] > 0  # Label Studio reads ours
        np.testing.assert_array_equal(back, m)
        np.testing.assert_array_equal(label_studio.decode_rle(ours, m.shape), m)


def test_brush_rle_of_another_encoder_and_bad_codes():
    m = _masks()[0]
    # another writer of the format (as the web editor's rle-pack): other field sizes, literal chunks only
    values = np.repeat(m.ravel().astype(np.uint8) * 200, 4)
    bits = f"{values.size:032b}{8 - 1:05b}" + "".join(f"{s - 1:04b}" for s in (2, 5, 9, 16))
    for i in range(0, values.size, 4):  # a literal chunk of four words: flag 0, field 0 (2 bits), length - 1
        chunk = values[i:i + 4]
        bits += "000" + f"{len(chunk) - 1:02b}" + "".join(f"{v:08b}" for v in chunk)
    bits += "0" * (-len(bits) % 8)
    other = list(int(bits, 2).to_bytes(len(bits) // 8, "big"))
    np.testing.assert_array_equal(brush.decode_rle(other).reshape(*m.shape, 4)[:, :, 3] > 0, m)  # valid for LS
    np.testing.assert_array_equal(label_studio.decode_rle(other, m.shape), m)
    with pytest.raises(SampromptError, match="holds .* values"):
        label_studio.decode_rle(label_studio.encode_rle(m), (m.shape[0] + 1, m.shape[1]))
    with pytest.raises(SampromptError, match="ends early"):
        label_studio.decode_rle(label_studio.encode_rle(m)[:10], m.shape)


def test_cvat_mask_code_is_cvats_own():
    for m in _masks():
        runs, (left, top, w, h) = cvat.mask_rle(m)
        ref = cvat_masks.encode_mask(m)
        assert runs == ref[:-4] and [left, top, left + w - 1, top + h - 1] == ref[-4:]
        np.testing.assert_array_equal(cvat_masks.decode_mask(runs + ref[-4:], image_width=m.shape[1],
                                                             image_height=m.shape[0]), m)
        np.testing.assert_array_equal(cvat.decode_mask(", ".join(map(str, runs)), left, top, w, h, m.shape), m)
    with pytest.raises(SampromptError, match="covers"):
        cvat.decode_mask("1, 2", 0, 0, 4, 4, (8, 8))


@pytest.fixture
def annotated(random_sam, tmp_path):
    """A folder of three images annotated through the annotator, exported as a whole."""
    from samprompt.annotate.session import Annotator, SessionState

    folder = tmp_path / "images"
    folder.mkdir()
    for k in range(3):
        cv2.imwrite(str(folder / f"im{k}.png"), make_scene(k, size=(96, 128)).image[..., ::-1])
    app = Annotator(Segmenter(random_sam), folder, tmp_path / "ann")
    app.set_classes(["object", "cat"])
    from samprompt.annotate.document import stamp_objects

    st = SessionState()
    for k in range(3):
        app.open_index(st, k)
        app.command(st, {"op": "draw_polygon", "points": [[10, 10 + 4 * k], [90, 14], [70, 70], [12, 60]]}, "cat")
        app.command(st, {"op": "draw_polygon", "points": [[100, 50], [125, 52], [118, 90]]}, "object")
        stamp_objects(st.ann, "ann")  # as the app does for a signed-in user: who made each object travels with it
        app.autosave(st)
    *_, xml, tasks = app.export_all(st)
    truth = {p.name: np.stack([o.mask for o in app.open_index(st, k) and st.ann.objects])
             for k, p in enumerate(app.entries)}
    labels = {p.name: [o.label for o in app.open_index(st, k) and st.ann.objects] for k, p in enumerate(app.entries)}
    return truth, labels, xml, tasks


def test_folder_export_imports_back_exactly_from_cvat_and_label_studio(annotated):
    truth, labels, xml, tasks = annotated
    doc = json.loads(Path(tasks).read_text())
    assert [t["data"]["image"] for t in doc] == [f"/data/local-files/?d={n}" for n in sorted(truth)]
    region = doc[0]["annotations"][0]["result"][0]
    assert region["type"] == "brushlabels" and region["value"]["brushlabels"] == ["cat"]
    assert "created_by ann" in region["meta"]["text"][0]  # who made it: the region's meta in Label Studio
    assert '<attribute name="created_by">ann</attribute>' in Path(xml).read_text()  # and a CVAT attribute
    for source in (xml, tasks):
        got = open_labels(source)
        for name, masks in truth.items():
            objects = got.objects(name, masks.shape[1:])
            assert [lab for lab, _ in objects] == labels[name], source
            for (_, m), t in zip(objects, masks):
                np.testing.assert_array_equal(m, t)
    assert open_labels(xml).objects("not_there.png", (96, 128)) == []


def test_cvat_polygons_and_label_studio_polygons_and_upload_names(annotated, tmp_path):
    truth, labels, _, _ = annotated
    images = [(n, m.shape[1:], [(lab, mm, None) for lab, mm in zip(labels[n], m)]) for n, m in truth.items()]
    poly = cvat.write_xml(tmp_path / "poly.xml", images, ["object", "cat"], shapes="polygon")
    assert "<polygon" in poly.read_text() and "<mask" not in poly.read_text()
    got = open_labels(poly)
    for name, masks in truth.items():
        for (_, m), t in zip(got.objects(name, masks.shape[1:]), masks):
            assert iou(m, t) > 0.9
    # a Label Studio export of uploaded files: polygons in percent, names behind /data/upload/N/PREFIX-NAME
    name, masks = next(iter(truth.items()))
    h, w = masks.shape[1:]
    from samprompt.masks import mask_to_polygons

    ring = np.asarray(mask_to_polygons(masks[0])[0]).reshape(-1, 2)
    task = {"data": {"img": f"/data/upload/4/1a2b3c4d-{name}"}, "annotations": [
        {"result": [label_studio.polygon_result(ring, (h, w), "cat")], "updated_at": "2026-01-02"},
        {"result": [], "updated_at": "2026-01-01"}]}  # the later annotation is taken
    path = tmp_path / "ls.json"
    path.write_text(json.dumps([task]))
    ((lab, m),) = open_labels(path).objects(name, (h, w))
    assert lab == "cat" and iou(m, masks[0]) > 0.9


def test_wrong_files_are_refused_with_a_reason(tmp_path):
    bad = tmp_path / "other.xml"
    bad.write_text("<voc><object/></voc>")
    with pytest.raises(SampromptError, match="not CVAT XML"):
        open_labels(bad)
    video = tmp_path / "video.xml"
    video.write_text("<annotations><version>1.1</version><track id='0' label='a'/></annotations>")
    with pytest.raises(SampromptError, match="CVAT for video"):
        open_labels(video)
    bomb = tmp_path / "bomb.xml"  # entity expansion: defusedxml refuses it
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx">]><annotations>&x;</annotations>')
    with pytest.raises(SampromptError, match="cannot read"):
        open_labels(bomb)
    ls = tmp_path / "tasks.json"
    ls.write_text(json.dumps([{"annotations": []}]))
    with pytest.raises(SampromptError, match="not a Label Studio task list"):
        open_labels(ls)
    ls.write_text(json.dumps([{"data": {"image": "a.png"}, "annotations": [{"result": [
        {"type": "brushlabels", "value": {"rle": [0, 0, 0], "brushlabels": ["x"]}}]}]}]))
    with pytest.raises(SampromptError, match="original_width"):
        open_labels(ls).objects("a.png", (4, 4))
