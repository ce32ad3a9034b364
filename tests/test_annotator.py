"""The Gradio annotator: its logic directly, and end to end through gradio_client."""

import json
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from samprompt import SampromptError, Segmenter, cli
from samprompt.annotate.app import build_app
from samprompt.annotate.session import MODES, Annotator, SessionState
from samprompt.synthetic import make_scene, write_dataset

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), 3, size=(96, 128))


def test_logic_folder_clicks_box_and_resume(folder, random_sam, tmp_path):
    seg = Segmenter(random_sam)
    app = Annotator(seg, folder, tmp_path / "ann")
    st = SessionState()
    app.open_index(st, 0)
    app.prefetched.join()
    assert seg.encoder_calls == 2  # the next image was encoded in the background
    assert "file 1 / 3" in app.progress(st)
    app.click(st, 30, 40, MODES[0], "cat")
    assert "box" in app.click(st, 10, 10, MODES[2], "cat")
    app.click(st, 60, 70, MODES[2], "cat")
    assert st.ann.objects[0].box == (10, 10, 60, 70) and st.ann.objects[0].points == [(30.0, 40.0)]
    assert app.render(st).shape == (96, 128, 3)
    app.open_index(st, 1)  # stepping away saves; image 1 comes from the cache, image 2 is prefetched
    app.prefetched.join()
    assert "1 with saved" in app.progress(st)
    app.open_index(st, 0)  # coming back resumes
    assert len(st.ann.objects) == 1 and st.ann.objects[0].label == "cat"
    app.prefetched.join()
    assert seg.encoder_calls == 3  # each image encoded once, even when revisited
    with pytest.raises(Exception, match="limit"):
        Annotator(seg, folder, tmp_path, max_pixels=50).open_index(SessionState(), 0)
    images = folder / "images" if (folder / "images").is_dir() else folder
    for out in (images, images / "." ):  # the images' own folder: exports would write over them
        with pytest.raises(SampromptError, match="would overwrite them"):
            Annotator(seg, folder, out)
    with pytest.raises(SampromptError, match="would overwrite them"):
        Annotator(seg, next(images.glob("*.png")), images)  # one file, --out its folder


@pytest.fixture(scope="module")
def server(folder, random_sam, tmp_path_factory):
    out = tmp_path_factory.mktemp("ann")
    annotator = Annotator(Segmenter(random_sam), folder, out)
    app = build_app(annotator)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, max_file_size="5mb")
    yield f"http://127.0.0.1:{port}/", annotator
    app.close()


def test_client_session_end_to_end(server, folder):
    url, annotator = server
    c = gradio_client.Client(url, verbose=False)
    msg = c.predict(api_name="/next")
    assert "opened" in msg[1] or "opened" in str(msg)
    out = c.predict("40,50", MODES[0], "object", api_name="/click")
    assert "score" in str(out)
    c.predict("object, cat , dog,cat", "object", api_name="/classes")
    c.predict("cat", api_name="/new_object")
    c.predict("5,5", MODES[2], "object", api_name="/click")
    c.predict("90,80", MODES[2], "object", api_name="/click")
    c.predict(api_name="/undo")
    c.predict(api_name="/redo")
    out = c.predict('[{"op": "key", "key": "new"}, {"op": "box", "box": [20, 20, 70, 60]}]', "dog", api_name="/command")
    assert "dog" in out[1]  # the canvas's commands, scripted
    assert "expected a JSON command" in c.predict("slice 3", "dog", api_name="/command")[1]
    c.predict(api_name="/undo")
    c.predict(api_name="/undo")
    files, status = c.predict("object", api_name="/export")
    assert files, status
    coco_path = [f for f in files if str(f).endswith(".coco.json")][0]
    api = COCO(coco_path)
    assert len(api.getAnnIds()) == 2
    names = {api.loadCats(a["category_id"])[0]["name"] for a in api.loadAnns(api.getAnnIds())}
    assert names == {"object", "cat"} and [c["name"] for c in api.loadCats(api.getCatIds())][:3] == ["object", "cat", "dog"]
    # autosaved: a new server process on the same folder would resume both objects
    saved = json.loads((annotator.out / "default_000000.annotation.json").read_text())
    assert len(saved["objects"]) == 2
    # a second client (another tab) sees none of these objects
    c2 = gradio_client.Client(url, verbose=False)
    c2.predict(api_name="/next")
    res = c2.predict(api_name="/undo")
    assert "nothing to undo" in str(res)


def test_client_bad_upload_keeps_app_alive(server, tmp_path):
    url, _ = server
    c = gradio_client.Client(url, verbose=False)
    big = tmp_path / "big.png"
    big.write_bytes(b"0" * (6 * 1024 * 1024))  # over the 5 MB upload limit
    with pytest.raises(Exception):
        c.predict(gradio_client.handle_file(str(big)), api_name="/upload")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    res = c.predict(gradio_client.handle_file(str(bad)), api_name="/upload")
    assert "cannot decode" in str(res)
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((40, 50, 3), 128, np.uint8))
    res = c.predict(gradio_client.handle_file(str(good)), api_name="/upload")
    assert "opened good" in str(res)
    view = json.loads(res[0])  # the canvas document: the picture (new to this tab) and the masks
    assert view["image"].startswith("data:image/png;base64,") and (view["w"], view["h"]) == (50, 40)


# ---------------------------------------------------------------- work that must never be lost
def _png(path, value, size=(40, 50)):
    cv2.imwrite(str(path), np.full((*size, 3), value, np.uint8))
    return path


def test_images_whose_names_clean_up_alike_keep_separate_saves(random_sam, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    _png(d / "x y.png", 60)
    _png(d / "x_y.png", 200, size=(48, 64))  # another size too: a shared file would mix them up
    app = Annotator(Segmenter(random_sam), d, tmp_path / "ann")
    a, b = SessionState(), SessionState()
    app.open_index(a, 0)
    app.click(a, 10, 10, MODES[0], "object")
    app.autosave(a)
    app.open_index(b, 1)  # the other image opens fresh, with no IndexError and no borrowed objects
    assert b.ann.objects == [] and b.ann.size == (48, 64)
    app.click(b, 20, 20, MODES[0], "object")
    app.autosave(b)
    saves = sorted(p.name for p in (tmp_path / "ann").glob("*.annotation.json"))
    assert len(saves) == 2
    docs = [json.loads((tmp_path / "ann" / n).read_text()) for n in saves]
    assert sorted(d_["file_name"] for d_ in docs) == ["x y.png", "x_y.png"]
    assert {tuple(d_["image_size"]) for d_ in docs} == {(40, 50), (48, 64)}
    u1, u2 = _png(tmp_path / "u1.png", 10), _png(tmp_path / "u2.png", 250)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    s1, s2 = SessionState(), SessionState()  # two uploads both named snap.png, different pictures
    app.open_upload(s1, str(u1.rename(tmp_path / "a" / "snap.png")))
    app.open_upload(s2, str(u2.rename(tmp_path / "b" / "snap.png")))
    assert s1.ann.name != s2.ann.name and s1.ann.file_name == s2.ann.file_name == "snap.png"
    app.click(s1, 5, 5, MODES[0], "object")
    app.autosave(s1)
    app.export_all(a)
    coco = json.loads((tmp_path / "ann" / "coco_all.json").read_text())
    assert sorted(im["file_name"] for im in coco["images"]) == ["x y.png", "x_y.png"]  # extensions kept, no uploads


def test_a_stale_tab_cannot_overwrite_another_tabs_objects(random_sam, tmp_path):
    from samprompt.annotate.document import StaleSaveError

    d = tmp_path / "imgs"
    d.mkdir()
    _png(d / "one.png", 90)
    app = Annotator(Segmenter(random_sam), d, tmp_path / "ann")
    a, b = SessionState(), SessionState()
    app.open_index(a, 0)
    app.open_index(b, 0)  # both tabs on the same image
    app.click(a, 10, 10, MODES[0], "cat")
    app.autosave(a)
    app.click(b, 30, 30, MODES[0], "dog")
    with pytest.raises(StaleSaveError, match="another tab"):
        app.autosave(b)
    saved = json.loads((tmp_path / "ann" / "one.annotation.json").read_text())
    assert [o["label"] for o in saved["objects"]] == ["cat"] and saved["revision"] == 1
    app.open_index(b, 0)  # reopening shows the other tab's object and saves on top of it
    assert [o.label for o in b.ann.objects] == ["cat"]
    app.click(b, 30, 30, MODES[0], "dog")
    app.autosave(b)
    assert json.loads((tmp_path / "ann" / "one.annotation.json").read_text())["revision"] == 2
    legacy = {"version": 1, "image": "one", "image_size": [40, 50], "objects": []}  # a file from before revisions
    (tmp_path / "ann" / "one.annotation.json").write_text(json.dumps(legacy))
    fresh = SessionState()
    app.open_index(fresh, 0)
    assert fresh.ann.objects == [] and fresh.ann.revision == 0
    app.click(fresh, 10, 10, MODES[0], "cat")
    app.autosave(fresh)
    assert json.loads((tmp_path / "ann" / "one.annotation.json").read_text())["revision"] == 1


def test_the_class_list_is_the_folders_and_survives_a_restart(random_sam, tmp_path):
    import os

    from samprompt.synthetic import make_scene

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(2):
        cv2.imwrite(str(d / f"im{i}.png"), make_scene(i, size=(96, 128)).image[..., ::-1])
    out = tmp_path / "ann"
    app = Annotator(Segmenter("tiny"), d, out)
    app.set_classes(["object", "bar", "bar", " cat "])
    assert app.classes == ["object", "bar", "cat"]
    st = SessionState()
    app.open_index(st, 0)
    app.click(st, 0, 0, MODES[2], "bar")
    app.click(st, 128, 96, MODES[2], "bar")  # a whole-image box: a mask for sure
    first = app.export(st)
    again = Annotator(Segmenter("tiny"), d, out)  # a restart: a new process on the same folder
    assert again.classes == ["object", "bar", "cat"]
    st2 = SessionState()
    again.open_index(st2, 1)
    again.click(st2, 0, 0, MODES[2], "bar")
    again.click(st2, 128, 96, MODES[2], "bar")
    second = again.export(st2)
    ids = [int((out / "labels" / f"im{i}.txt").read_text().split()[0]) for i in range(2)]
    assert ids == [1, 1]  # bar is class 1 in both files
    assert (out / "classes.txt").read_text().splitlines() == ["object", "bar", "cat"]
    assert not (out / "data.yaml").exists()  # a dataset's file: the folder export writes it, with its images
    coco = json.loads(Path(next(p for p in second if p.endswith(".coco.json"))).read_text())
    names = [c["name"] for c in coco["categories"]]
    assert len(names) == len(set(names))
    umask = os.umask(0)
    os.umask(umask)
    for p in first + second:
        assert (os.stat(p).st_mode & 0o777) == 0o666 & ~umask, p  # the usual mode, not 0600


def test_a_huge_image_is_refused_from_its_header_before_decoding(random_sam, tmp_path):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"  # a valid PNG header claiming 20000 x 20000 px, and almost no data
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    app = Annotator(Segmenter(random_sam), None, tmp_path / "ann")
    with pytest.raises(Exception, match="bomb.png is 20000x20000 .400 MP.; the limit is 60 MP"):
        app.open_upload(SessionState(), str(bomb))
    corrupt = tmp_path / "deep" / "server-temp-path"
    corrupt.mkdir(parents=True)
    (corrupt / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(Exception) as err:
        app.open_upload(SessionState(), str(corrupt / "broken.png"))
    assert "cannot decode broken.png" in str(err.value) and "server-temp-path" not in str(err.value)


def test_a_click_then_undo_at_once_are_handled_in_order(server):
    url, _ = server
    c = gradio_client.Client(url, verbose=False)
    import time

    blocks = build_app(Annotator(Segmenter("tiny"), None, None))
    fns = list(blocks.fns.values()) if isinstance(blocks.fns, dict) else list(blocks.fns)
    edits = [f for f in fns if f.api_name in ("click", "undo", "redo", "upload", "accept", "export", "new_object")]
    assert len(edits) == 7 and {(f.concurrency_id, f.concurrency_limit) for f in edits} == {("edits", 1)}
    c.predict(api_name="/next")
    for _ in range(3):
        click = c.submit("30,30", MODES[0], "object", api_name="/click")
        while click.status().code.name in ("STARTING", "JOINING_QUEUE"):
            time.sleep(0.005)
        undo = c.submit(api_name="/undo")  # sent while the click is queued or running, as a quick 'z' is
        click.result()
        assert "undone" in str(undo.result())  # never "nothing to undo" or a half-applied click


def test_existing_labels_import_as_objects_in_each_format(random_sam, tmp_path):
    from samprompt.masks import iou

    data = write_dataset(tmp_path / "data", 2, size=(96, 128))  # images/ + masks/ (label maps)
    seg = Segmenter(random_sam)
    truth = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((data / "masks").glob("*.png"))]
    st = SessionState()
    maps = Annotator(seg, data / "images", tmp_path / "a1", imports=data)
    assert "imported" in maps.open_index(st, 0)
    got = np.stack([o.mask for o in st.ann.objects])
    assert len(got) == truth[0].max() and all(o.points == [] and o.label == "object" for o in st.ann.objects)
    np.testing.assert_array_equal(got, truth[0][None] == np.arange(1, truth[0].max() + 1)[:, None, None])
    # exported as COCO and YOLO by the annotator, then imported again by a new one: the same objects come back
    maps.set_classes(["object", "thing"])
    st.ann.rename(0, "thing")
    maps.export(st)
    coco_file = tmp_path / "a1" / f"{st.ann.name}.coco.json"
    for source in (coco_file, tmp_path / "a1" / "labels"):
        other = Annotator(seg, data / "images", tmp_path / f"b_{source.name}", imports=source)
        st2 = SessionState()
        other.open_index(st2, 0)
        assert [o.label for o in st2.ann.objects] == [o.label for o in st.ann.objects]
        ious = [iou(a.mask, b.mask) for a, b in zip(st2.ann.objects, st.ann.objects)]
        if source == coco_file:
            assert min(ious) > 0.999, ious  # RLE is exact
        else:  # YOLO-seg keeps one outer polygon per object: holes and extra pieces are lost
            assert min(ious) > 0.5 and np.mean(ious) > 0.85, ious
        assert "thing" in other.classes
    saved = Annotator(seg, data / "images", tmp_path / "a1", imports=data)  # a saved annotation wins over imports
    st3 = SessionState()
    assert "resumed" in saved.open_index(st3, 0) and st3.ann.objects[0].label == "thing"
    with pytest.raises(Exception, match="expected a folder of label-map PNGs"):
        Annotator(seg, data / "images", tmp_path / "x", imports=tmp_path / "nothing_here")


# ---------------------------------------------------------------- the canvas's commands and documents
def _decode(url):
    import base64

    return cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_UNCHANGED)


def test_canvas_commands_and_the_documents_they_send(folder, random_sam, tmp_path):
    app = Annotator(Segmenter(random_sam), folder, tmp_path / "ann")
    st = SessionState()
    app.open_index(st, 0)
    first = app.view(st)
    assert _decode(first["image"]).shape == (96, 128, 3) and [f["status"] for f in first["files"]] == ["", "", ""]
    app.command(st, {"op": "box", "box": [10, 10, 60, 50]}, "cat")
    doc = app.view(st)
    assert "image" not in doc  # the picture is sent once; an edit sends the overlay alone
    from samprompt.annotate.canvas import runs_to_labels

    labels = runs_to_labels(doc["masks"], 96, 128)  # the masks as the browser paints them
    np.testing.assert_array_equal(labels == 1, st.ann.objects[0].mask)
    assert doc["masks"]["palette"] == {"1": [*doc["masks"]["palette"]["1"][:3], 150]}  # selected: the stronger fill
    assert doc["objects"][0]["box"] == [10, 10, 60, 50] and doc["polygons"] and doc["legend"][1]["name"] == "cat"
    # a hand edit, then a SAM prompt on the same object: asked first, applied only when confirmed
    app.command(st, {"op": "brush", "points": [[100, 80]], "radius": 4}, "cat")
    said = app.command(st, {"op": "point", "x": 20, "y": 20, "n": 9}, "cat")
    assert "not replaced" in said and app.view(st)["confirm"]["cmd"]["op"] == "point"
    assert st.ann.objects[0].points == [] and "confirm" not in app.view(st)  # asked once
    app.command(st, {"op": "point", "x": 20, "y": 20, "force": True}, "cat")
    assert st.ann.objects[0].points == [(20.0, 20.0)] and not st.ann.objects[0].edited
    # a small object on a large one: a pick selects the small one
    app.command(st, {"op": "key", "key": "new"}, "dog")
    app.command(st, {"op": "brush", "points": [[5, 90]], "radius": 3}, "dog")
    st.ann.objects[0].mask[:] = True  # the large one covers everything
    app.command(st, {"op": "pick", "x": 5.5, "y": 90.5}, "cat")
    assert st.ann.current == 1
    app.command(st, {"op": "pick", "x": 20, "y": 20}, "cat")
    assert st.ann.current == 0
    with pytest.raises(Exception, match="unknown canvas command"):
        app.command(st, {"op": "teleport"}, "cat")
    proposal = np.zeros((96, 128), bool)
    proposal[40:50, 100:120] = True
    st.ann.proposals = [proposal]  # the proposal under review: white, on top, and boxed
    doc = app.view(st)
    n = len(st.ann.objects)
    assert doc["proposal_box"] == [100, 40, 120, 50] and doc["masks"]["palette"][str(n + 1)][:3] == [255, 255, 255]
    np.testing.assert_array_equal(runs_to_labels(doc["masks"], 96, 128) == n + 1, proposal)
    st.ann.proposals = []
    app.autosave(st)  # the image is now "saved": the file list is sent again, once
    d1, d2 = app.view(st), app.view(st)
    assert d1["files"][0]["status"] == "saved" and "files" not in d2


def test_done_marks_the_image_and_advances_to_the_next_unfinished_one(folder, random_sam, tmp_path):
    app = Annotator(Segmenter(random_sam), folder, tmp_path / "ann")
    st = SessionState()
    app.open_index(st, 1)
    app.command(st, {"op": "point", "x": 30, "y": 30}, "object")
    app.autosave(st)
    assert "opened default_000002" in app.command(st, {"op": "key", "key": "done"}, "object")
    assert st.index == 2 and [f["status"] for f in app.files()] == ["", "done", ""]
    app.key(st, "done")  # an image without objects can be done too
    assert st.index == 0 and [f["status"] for f in app.files()] == ["", "done", "done"]
    assert "every file of the folder is done" in app.key(st, "done") and st.index == 0
    st.auto_advance = False  # the tab's checkbox
    app.open_index(st, 1)
    assert app.key(st, "done").endswith("done (z takes it back)") and st.index == 1
    again = Annotator(Segmenter(random_sam), folder, tmp_path / "ann")  # the status survives a restart
    assert [f["status"] for f in again.files()] == ["done", "done", "done"]
    assert "3 done" in again.progress(SessionState())


def test_out_pointing_at_a_file_is_refused_before_the_server_starts(tmp_path):
    """Issue 30, item 15: one line, exit status 2, no server."""
    import subprocess
    import sys

    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), make_scene(1, size=(64, 64)).image)
    not_a_dir = tmp_path / "notes.txt"
    not_a_dir.write_text("mine")
    run = subprocess.run([sys.executable, "-m", "samprompt.cli", "annotate", str(folder), "--out", str(not_a_dir)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "is a file, not a folder" in run.stderr
    assert "Running on" not in run.stdout and not_a_dir.read_text() == "mine"


def test_the_folder_export_is_a_yolo_dataset_whose_labels_pair_with_their_images(random_sam, tmp_path):
    """Issue 30: the folder export writes images/, labels/ and a data.yaml that YOLO's loaders read as is."""
    import yaml

    from samprompt.masks import rle_to_mask

    d = tmp_path / "imgs"
    d.mkdir()
    for name, seed in (("a.png", 1), ("a.jpg", 2), ("b.png", 3), ("c.png", 4)):  # a.png and a.jpg share a stem
        cv2.imwrite(str(d / name), make_scene(seed, size=(96, 128)).image[..., ::-1])
    out = tmp_path / "ann"
    app = Annotator(Segmenter(random_sam), d, out)
    app.set_classes(["object", "cat", "dog"])
    st = SessionState()
    for k in range(3):  # c.png is never annotated: it stays out of the dataset
        app.open_index(st, k)
        corner = [[10 + 8 * k, 10], [90, 12 + 5 * k], [70, 70], [12, 60 - 6 * k]]  # one shape per image
        app.command(st, {"op": "draw_polygon", "points": corner}, ["cat", "dog", "cat"][k])
        app.autosave(st)
    coco, data_yaml, *_ = app.export_all(st)
    spec = yaml.safe_load(Path(data_yaml).read_text())
    root = Path(spec["path"])
    assert root.is_absolute() and root == out / "yolo" and (root / spec["train"]).is_dir()
    assert spec["names"] == {0: "object", 1: "cat", 2: "dog"}
    images = sorted(p for p in (root / "images").iterdir() if not p.name.startswith("."))  # not our ledger
    assert len(images) == 3 and not any(p.stem == "c" for p in images)
    for image in images:  # YOLO's rule: /images/ -> /labels/, the suffix -> .txt
        label = Path(str(image).replace("/images/", "/labels/")).with_suffix(".txt")
        assert label.exists(), image
        key = app.keys[next(p for p in app.entries if p.read_bytes() == image.read_bytes())]
        saved = json.loads((out / f"{key}.annotation.json").read_text())
        truth = rle_to_mask(saved["objects"][0]["accepted_mask"])
        (line,) = label.read_text().splitlines()
        assert spec["names"][int(line.split()[0])] == saved["objects"][0]["label"]
        h, w = truth.shape  # rasterised as YOLO's loaders do: one polygon, filled
        back = np.zeros((h, w), np.uint8)
        cv2.fillPoly(back, [np.round(np.array(line.split()[1:], float).reshape(-1, 2) * [w, h]).astype(np.int32)], 1)
        assert (back.astype(bool) & truth).sum() / (back.astype(bool) | truth).sum() > 0.97
    assert len(json.loads(Path(coco).read_text())["images"]) == 3
    app.export_all(st)  # a second export replaces its own files
    assert len([p for p in (root / "images").iterdir() if not p.name.startswith(".")]) == 3


def test_undo_takes_back_a_done_and_the_move_to_the_next_file(folder, random_sam, tmp_path):
    app = Annotator(Segmenter(random_sam), folder, tmp_path / "ann")
    st = SessionState()
    app.open_index(st, 0)
    app.command(st, {"op": "point", "x": 30, "y": 30}, "object")
    app.key(st, "done")
    assert st.index == 1 and app.files()[0]["status"] == "done"
    app.command(st, {"op": "point", "x": 40, "y": 40}, "object")  # an edit on the next file is undone first
    assert app.key(st, "undo") == "undone" and st.index == 1
    assert "not done any more" in app.key(st, "undo")
    assert st.index == 0 and app.files()[0]["status"] == "saved" and len(st.ann.objects) == 1
    assert app.key(st, "undo") == "nothing to undo"  # a reopened file starts a new history


def test_a_busy_port_is_said_in_our_words_before_the_model_loads(capsys):
    from samprompt.annotate.app import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as stop:
            main(["--port", str(port)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is in use" in err and "--port" in err and "launch()" not in err


def test_a_network_host_is_refused_without_insecure(capsys):
    """No sign-in yet (issue 28): serving every image and save to the network needs an explicit --insecure."""
    from samprompt.annotate.app import main

    with pytest.raises(SystemExit) as stop:
        main(["--host", "0.0.0.0", "--port", "1"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--host 0.0.0.0 would serve every image" in err and "--insecure" in err


def test_sign_in_users_file_and_objects_record_who_made_them(folder, random_sam, tmp_path, capsys, monkeypatch):
    """Issue 28, first step: users with argon2 hashes; with --users nothing is served before sign-in, and each
    object records who made it and who last edited it."""
    import io
    import os
    import urllib.error
    import urllib.request

    from samprompt.annotate.users import check_password, read_users
    from samprompt.annotate.app import auth_check

    users_file = tmp_path / "users.toml"
    for name, role, pw in (("ana", "annotator", "correct horse"), ("rev", "reviewer", "battery staple")):
        monkeypatch.setattr("sys.stdin", io.StringIO(pw + "\n"))
        assert cli.main(["annotate", "users", "add", name, "--role", role, "--users", str(users_file),
                         "--password-stdin"]) == 0
    assert (os.stat(users_file).st_mode & 0o777) == 0o600 and "correct horse" not in users_file.read_text()
    users = read_users(users_file)
    assert {u.role for u in users.values()} == {"annotator", "reviewer"}
    assert check_password(users, "ana", "correct horse") and not check_password(users, "ana", "wrong")
    assert not check_password(users, "nobody", "correct horse")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.main(["annotate", "users", "add", "x", "--users", str(users_file), "--password-stdin"]) == 2
    assert "at least 8 characters" in capsys.readouterr().err

    annotator = Annotator(Segmenter(random_sam), folder, tmp_path / "ann")
    app = build_app(annotator)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
               auth=auth_check(users))
    url = f"http://127.0.0.1:{port}/"
    try:
        with pytest.raises(Exception):  # no session: the app's API is closed
            gradio_client.Client(url, verbose=False).predict(api_name="/next")
        for path in ("config", "gradio_api/info", "gradio_api/file=" + str(folder / "images")):
            with pytest.raises(urllib.error.HTTPError) as refused:  # nothing of the app without a session
                urllib.request.urlopen(url + path, timeout=10)
            assert refused.value.code == 401
        c = gradio_client.Client(url, auth=("ana", "correct horse"), verbose=False)
        c.predict(api_name="/next")
        c.predict("40,50", MODES[0], "object", api_name="/click")
        saved = json.loads((annotator.out / "default_000000.annotation.json").read_text())
        (obj,) = saved["objects"]
        assert obj["created_by"] == "ana" == obj["edited_by"] and obj["created_at"].endswith("+00:00")
        files, _ = c.predict("object", api_name="/export")  # COCO keeps it as the annotation's attributes
        coco = json.loads(Path(next(f for f in files if str(f).endswith(".coco.json"))).read_text())
        assert coco["annotations"][0]["attributes"]["created_by"] == "ana"
        who = json.loads(Path(next(f for f in files if str(f).endswith(".who.json"))).read_text())
        label_lines = (annotator.out / "labels" / who["labels"]).read_text().splitlines()
        assert len(who["lines"]) == len(label_lines) == 1 and who["lines"][0]["created_by"] == "ana"  # YOLO's sidecar
        coco_all, _, cvat_xml, ls_json = c.predict(False, api_name="/export_all")[0]  # COCO, YOLO, CVAT, LS
        assert '<attribute name="edited_by">ana</attribute>' in Path(cvat_xml).read_text()
        assert "edited_by ana" in json.dumps(json.loads(Path(ls_json).read_text()))
        assert json.loads(Path(coco_all).read_text())["annotations"][0]["attributes"]["edited_by"] == "ana"
    finally:
        app.close()


def test_review_round_trip_between_an_annotator_and_a_reviewer(folder, random_sam, tmp_path, monkeypatch):
    """Issue 28, review: done -> accepted | rejected with a comment; a rejected file returns to its annotator with the
    comment, done again it awaits review; only a reviewer judges; status.json counts per state and per user; the
    folder export can be limited to accepted files."""
    import io

    from samprompt.annotate.app import auth_check
    from samprompt.annotate.users import read_users

    users_file = tmp_path / "users.toml"
    for name, role, pw in (("ana", "annotator", "correct horse"), ("rev", "reviewer", "battery staple")):
        monkeypatch.setattr("sys.stdin", io.StringIO(pw + "\n"))
        assert cli.main(["annotate", "users", "add", name, "--role", role, "--users", str(users_file),
                         "--password-stdin"]) == 0
    users = read_users(users_file)
    annotator = Annotator(Segmenter(random_sam), folder, tmp_path / "ann")
    annotator.roles = {n: u.role for n, u in users.items()}
    app = build_app(annotator)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, auth=auth_check(users))
    url = f"http://127.0.0.1:{port}/"

    def status():
        return json.loads((annotator.out / "status.json").read_text())

    try:
        ana = gradio_client.Client(url, auth=("ana", "correct horse"), verbose=False)
        rev = gradio_client.Client(url, auth=("rev", "battery staple"), verbose=False)
        ana.predict(api_name="/next")  # image 0
        ana.predict("40,50", MODES[0], "object", api_name="/click")
        msg = ana.predict("", api_name="/review_accept")[1]
        assert "only a reviewer" in msg and "ana is an annotator" in msg  # the annotator cannot judge
        ana.predict(api_name="/done")  # image 0 done; image 1 opens
        ana.predict("30,30", MODES[0], "object", api_name="/click")
        ana.predict(api_name="/done")  # image 1 done
        s = status()
        assert s["counts"] == {"new": 1, "in progress": 0, "done": 2, "accepted": 0, "rejected": 0}
        assert s["per_user"] == {"ana": {"done": 2}}

        rev.predict(api_name="/next")  # the reviewer opens image 0
        msg = rev.predict("", api_name="/review_reject")[1]
        assert "say why in the comment" in msg  # a rejection needs a comment
        msg = rev.predict("the object misses its lower half", api_name="/review_reject")[1]
        assert "rejected" in msg and "opened default_000001" in msg  # the queue moves to the next done file
        msg = rev.predict("", api_name="/review_accept")[1]
        assert "accepted" in msg and "no file awaits review" in msg
        s = status()
        assert s["counts"]["accepted"] == 1 and s["counts"]["rejected"] == 1
        assert s["files"]["default_000000"] == {"state": "rejected", "assigned_to": None, "done_by": "ana", "reviewed_by": "rev",
                                                "comment": "the object misses its lower half"}
        assert s["per_user"] == {"ana": {"accepted": 1, "rejected": 1}, "rev": {"reviewed": 2}}
        coco, *_ = rev.predict(True, api_name="/export_all")[0]  # accepted files only
        assert [im["file_name"] for im in json.loads(Path(coco).read_text())["images"]] == ["images/default_000001.png"]
        rev.predict(False, api_name="/export_all")  # every saved file, then the accepted ones again:
        shown = lambda d: sorted(p.name for p in (annotator.out / "yolo" / d).iterdir() if p.name[0] != ".")  # noqa: E731
        assert len(shown("images")) == 2
        rev.predict(True, api_name="/export_all")  # the earlier export's other image and labels are gone
        assert shown("images") == ["default_000001.png"]
        assert shown("labels") == ["default_000001.txt", "default_000001.who.json"]
        sidecars = sorted((annotator.out / "yolo" / "labels").glob("*.who.json"))
        assert [p.name for p in sidecars] == ["default_000001.who.json"]
        assert json.loads(sidecars[0].read_text())["lines"][0]["created_by"] == "ana"

        ana2 = gradio_client.Client(url, auth=("ana", "correct horse"), verbose=False)
        msg = ana2.predict(api_name="/next")[1]  # the rejected file reopens with the comment
        assert "rejected by rev: the object misses its lower half" in msg
        ana2.predict("60,40", MODES[0], "object", api_name="/click")
        msg = ana2.predict(api_name="/done")[1]
        assert "back in the reviewers' queue" in msg
        assert status()["files"]["default_000000"]["state"] == "done"
        history = json.loads((annotator.out / "review.json").read_text())["files"]["default_000000"]["history"]
        assert [h["state"] for h in history] == ["rejected"]  # kept after the file went back
        assert {f["status"] for f in annotator.files()} >= {"done", "accepted"}
    finally:
        app.close()


def test_assign_hands_each_user_their_own_files_stably(random_sam, tmp_path, capsys):
    """Issue 28, --assign N: a signed-in user gets N files of their own, goes on with them after done, then gets
    the next N nobody has; the hand-out survives a restart and shows in status.json and the file list."""
    data = write_dataset(tmp_path / "data", 5, size=(64, 64))
    app = Annotator(Segmenter(random_sam), data, tmp_path / "ann")
    app.assign = 2
    ana, bo = SessionState(user="ana"), SessionState(user="bo")
    assert "default_000000" in app.resume(ana)
    assert "default_000002" in app.resume(bo)  # ana holds files 0 and 1
    assert app.queue("ana") == [0, 1] and app.queue("bo") == [2, 3]
    for expect in ("default_000001", "default_000004"):  # her second file, then the next one nobody has
        app.click(ana, 30, 30, MODES[0], "object")
        assert expect in app.done(ana)
    app.click(ana, 30, 30, MODES[0], "object")
    assert "no file is left for you" in app.done(ana)  # bo's files are his
    again = Annotator(Segmenter(random_sam), data, tmp_path / "ann")  # a restart
    again.assign = 2
    assert again.queue("bo") == [2, 3] and again.queue("ana") == []
    assert {f["name"]: f.get("assigned") for f in again.files()}["images/default_000004.png"] == "ana"
    status = json.loads((app.out / "status.json").read_text())
    assert status["files"]["default_000003"]["assigned_to"] == "bo"
    assert status["files"]["default_000004"] == {"state": "done", "assigned_to": "ana", "done_by": "ana",
                                                 "reviewed_by": None, "comment": None}
    with pytest.raises(SystemExit):
        from samprompt.annotate.app import main
        main([str(data), "--assign", "2"])
    assert "--assign N hands files to signed-in users" in capsys.readouterr().err
