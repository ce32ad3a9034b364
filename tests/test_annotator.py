"""The Gradio annotator: its logic directly, and end to end through gradio_client."""

import json
import socket

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from samprompt import Segmenter
from samprompt.annotator import MODES, Annotator, SessionState, build_app
from samprompt.synthetic import write_dataset

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
    assert "image 1 / 3" in app.progress(st)
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
        Annotator(seg, folder, tmp_path, max_side=50).open_index(SessionState(), 0)


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
    files, status = c.predict("object", api_name="/export")
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
    assert "opened good" in str(res) and str(res[0]).endswith('.png')
