"""Videos in the annotator: lazy frames, a box on any frame, propagation both ways, corrections, resume, export."""

import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from samprompt import Segmenter
from samprompt.annotate.session import Annotator, SessionState
from samprompt.annotate.video import VideoFrames, is_video
from samprompt.synthetic.videos import make_video, write_video


def _box(m):
    ys, xs = np.nonzero(m)
    return [int(xs.min()), int(ys.min()), int(xs.max() + 1), int(ys.max() + 1)]


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.fixture(scope="module")
def seg():
    return Segmenter("tiny")  # the built-in model: it knows generated shapes


def test_box_propagation_follows_moving_shapes_in_a_video_and_a_frame_folder(seg, tmp_path):
    folder = tmp_path / "clips"
    videos = {"a.avi": make_video(0), "b": make_video(2)}  # a Motion-JPEG file and a folder of PNG frames
    for name, v in videos.items():
        write_video(folder / name, v.frames)
    photos = folder / "photos"  # a subfolder of unrelated photos of two sizes is not a video
    photos.mkdir()
    cv2.imwrite(str(photos / "x.png"), np.zeros((40, 60, 3), np.uint8))
    cv2.imwrite(str(photos / "y.png"), np.zeros((50, 60, 3), np.uint8))
    app = Annotator(seg, folder, tmp_path / "ann")
    assert sorted(p.name for p in app.volumes) == ["a.avi", "b"] and all(is_video(p) for p in app.volumes)
    ious = []
    for name, v in videos.items():
        st = SessionState()
        msg = app.open_index(st, [p.name for p in app.entries].index(name))
        assert "opened video" in msg and "12 frames of 256x192" in msg
        for o, truth in enumerate(v.truth):
            app.command(st, {"op": "slice", "k": 5}, "object")
            app.command(st, {"op": "key", "key": "new"}, "object")
            app.command(st, {"op": "box", "box": _box(truth[5])}, f"shape{o}")
            assert "propagated" in app.command(st, {"op": "propagate"}, f"shape{o}")
            uid = st.ann.objects[st.ann.current].uid
            got = st.volume.frames[uid]
            ious.append(np.mean([_iou(got.get(k, np.zeros_like(t)), t) for k, t in enumerate(truth)]))
        app.autosave(st)
    assert np.mean(ious) >= 0.8, ious  # the bar: mean IoU over objects and frames


def test_a_correction_resumes_and_exports_per_frame_labels_and_coco(seg, tmp_path):
    folder = tmp_path / "clips"
    v = make_video(1, n_frames=8)
    write_video(folder / "c.avi", v.frames)
    out = tmp_path / "ann"
    app = Annotator(seg, folder, out)
    st = SessionState()
    app.open_index(st, 0)
    app.command(st, {"op": "slice", "k": 2}, "object")
    app.command(st, {"op": "box", "box": _box(v.truth[0][2])}, "disc")
    app.command(st, {"op": "propagate"}, "disc")
    app.command(st, {"op": "slice", "k": 6}, "disc")  # a correction on another frame: erase a hole
    before = st.ann.objects[0].mask.copy()
    ys, xs = np.nonzero(before)
    app.command(st, {"op": "brush", "points": [[xs.mean(), ys.mean()]], "radius": 5, "erase": True}, "disc")
    corrected = st.ann.objects[0].mask.copy()
    assert corrected.sum() < before.sum()
    app.command(st, {"op": "slice", "k": 3}, "disc")
    frame3 = st.ann.objects[0].mask.copy()
    app.autosave(st)
    again = Annotator(seg, folder, out)  # a restart resumes every frame as it was left
    st2 = SessionState()
    assert "resumed 1 objects" in again.open_index(st2, 0)
    np.testing.assert_array_equal(st2.volume.frames[st2.volume.order[0]][6], corrected)
    np.testing.assert_array_equal(st2.volume.frames[st2.volume.order[0]][3], frame3)
    paths = again.export(st2)
    coco = COCO(str(out / "c.coco.json"))
    doc = json.loads((out / "c.coco.json").read_text())
    assert doc["videos"][0]["name"] == "c.avi" and doc["videos"][0]["length"] == 8
    frames = st2.volume.frames[st2.volume.order[0]]
    assert sorted(im["frame_id"] for im in doc["images"]) == sorted(frames)
    for im in doc["images"]:
        assert im["video_id"] == 1 and im["file_name"] == f"c/{im['frame_id']:06d}.png"
        (ann,) = coco.loadAnns(coco.getAnnIds(imgIds=[im["id"]]))
        assert ann["track_id"] == 1 and coco.cats[ann["category_id"]]["name"] == "disc"
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), frames[im["frame_id"]])
        label = cv2.imread(str(out / "c_frames" / f"{im['frame_id']:06d}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(label == 1, frames[im["frame_id"]])
    assert any(p.endswith("c.coco.json") for p in paths)


def test_frames_are_decoded_when_asked_for_not_all_at_once(tmp_path):
    v = make_video(3, n_frames=120, size=(96, 128), n_objects=1)
    frames = VideoFrames(write_video(tmp_path / "long.avi", v.frames))
    assert frames.n == 120 and frames.decoded == 1  # opening reads the first frame only
    for k in (60, 61, 62, 61, 5):  # a seek, reading on, a frame kept, a seek back
        diff = [np.abs(frames.image(k).astype(float) - v.frames[j]).mean() for j in (k, k + 1)]
        assert diff[0] < 4 and diff[0] < diff[1], (k, diff)  # JPEG-close to frame k, and not to its neighbour
    assert frames.decoded == 5
    with pytest.raises(Exception, match="out of range"):
        frames.image(120)
    # propagation walks at most `span` frames each way, so a long video is not read through in one go
    from samprompt.annotate.video import VideoAnnotation

    doc = VideoAnnotation(Segmenter("tiny"), tmp_path / "long.avi", "long")
    doc.span = 10
    doc.open_slice(60)
    doc.ann.set_box(_box(v.truth[0][60]))
    assert "at most 10 frames each way" in doc.propagate()
    assert min(doc.frames[doc.order[0]]) >= 50 and max(doc.frames[doc.order[0]]) <= 70
    assert doc.view.decoded <= 1 + 21 + 2  # the first frame, the window, and the frames it was opened on
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"not a video")
    with pytest.raises(Exception, match="cannot open this video|has no frames"):
        VideoFrames(bad)


def test_a_sam2_model_propagates_by_memory_over_the_window_only(tmp_path, monkeypatch):
    pytest.importorskip("sam2")
    import torch
    from sam2.build_sam import build_sam2

    from samprompt.annotate.video import VideoAnnotation
    from samprompt.domains import propagation

    torch.manual_seed(0)
    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu", mode="eval")
    v = make_video(5, n_frames=9, size=(96, 128), n_objects=1)
    seen = []
    real = propagation.PROPAGATORS["memory"]
    monkeypatch.setitem(propagation.PROPAGATORS, "memory",
                        lambda seg, view, tracks, *a: (seen.append((view.n, tracks[0].key)), real(seg, view, tracks, *a)))
    doc = VideoAnnotation(Segmenter(model), write_video(tmp_path / "v.avi", v.frames), "v")
    doc.span = 2
    doc.open_slice(6)
    doc.ann.set_box(_box(v.truth[0][6]))
    msg = doc.propagate()
    assert seen == [(5, 2)], seen  # frames 4-8, the key third among them: SAM 2's memory, not box
    assert "propagated" in msg and set(doc.frames[doc.order[0]]) <= set(range(4, 9))
