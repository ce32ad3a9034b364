"""samprompt serve label-studio: Label Studio's ML-backend protocol, with request bodies as Label Studio sends them.

Label Studio itself does not install beside our pins (its SDK pins OpenCV < 4.13), so the requests follow
its ML SDK's documented body (``label_studio_ml/api.py``: tasks, model_version, project, label_config,
params.context) and the answers are read with Label Studio's own brush decoder.
"""

import base64
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from samprompt import Segmenter
from samprompt.prompts import Prompt
from samprompt.synthetic import make_scene

starlette_testclient = pytest.importorskip("starlette.testclient")
brush = pytest.importorskip("label_studio_converter.brush")

CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="tag" toName="image">
    <Label value="shape" background="#FF0000"/><Label value="other" background="#0000FF"/>
  </BrushLabels>
  <KeyPointLabels name="tag2" toName="image" smart="true">
    <Label value="shape" smart="true" background="#000000" showInline="true"/>
  </KeyPointLabels>
  <RectangleLabels name="tag3" toName="image" smart="true">
    <Label value="other" smart="true" background="#000000" showInline="true"/>
  </RectangleLabels>
</View>"""


def _body(ref, context=None, config=CONFIG):
    return {"tasks": [{"id": 7, "data": {"image": ref}}], "model_version": "", "project": "3.1733300000",
            "label_config": config, "params": {"login": None, "password": None, "context": context or {}}}


def _keypoint(x, y, w, h, positive=True):
    return {"original_width": w, "original_height": h, "image_rotation": 0, "id": "k1", "from_name": "tag2",
            "to_name": "image", "type": "keypointlabels", "origin": "manual", "is_positive": positive,
            "value": {"x": 100 * x / w, "y": 100 * y / h, "width": 0.5, "keypointlabels": ["shape"]}}


def _rect(box, w, h):
    x0, y0, x1, y1 = box
    return {"original_width": w, "original_height": h, "image_rotation": 0, "id": "r1", "from_name": "tag3",
            "to_name": "image", "type": "rectanglelabels", "origin": "manual",
            "value": {"x": 100 * x0 / w, "y": 100 * y0 / h, "width": 100 * (x1 - x0) / w,
                      "height": 100 * (y1 - y0) / h, "rotation": 0, "rectanglelabels": ["other"]}}


def _mask(region):
    v = region["value"]
    h, w = region["original_height"], region["original_width"]
    return brush.decode_rle(v["rle"]).reshape(h, w, 4)[:, :, 3] > 0  # read as Label Studio reads it


@pytest.fixture(scope="module")
def served(tiny_or_random_sam, tmp_path_factory):
    from samprompt.annotate.ls_backend import Backend, ImageSource, make_app

    root = tmp_path_factory.mktemp("ls")
    scene = make_scene(5, size=(120, 160))
    (root / "docs").mkdir()
    cv2.imwrite(str(root / "docs" / "scene.png"), scene.image[..., ::-1])
    (root / "data" / "media" / "upload" / "3").mkdir(parents=True)
    cv2.imwrite(str(root / "data" / "media" / "upload" / "3" / "1a2b3c4d-scene.png"), scene.image[..., ::-1])
    (root / "secret.png").write_bytes((root / "docs" / "scene.png").read_bytes())
    seg = Segmenter(tiny_or_random_sam)
    backend = Backend(seg, ImageSource(document_root=root / "docs", data_dir=root / "data"))
    client = starlette_testclient.TestClient(make_app(backend, ("ls", "s3cret")), raise_server_exceptions=False)
    client.auth = ("ls", "s3cret")
    return client, seg, scene, root


def test_health_setup_webhook_and_metrics_answer_as_the_protocol_says(served):
    client, *_ = served
    for route in ("/", "/health"):
        got = client.get(route).json()
        assert got["status"] == "UP" and got["model_version"].startswith("samprompt-")
    assert client.post("/setup", json={"project": "3.1733300000", "schema": CONFIG}).json()["model_version"]
    assert client.post("/webhook", json={"action": "PROJECT_UPDATED"}).json() == {"status": "Unknown event"}
    trained = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 3}})
    assert trained.status_code == 201 and "does not train" in trained.json()["result"]
    assert client.get("/metrics").json() == {}


def test_every_route_refuses_without_the_basic_auth(served):
    client, *_ = served
    anonymous = starlette_testclient.TestClient(client.app)
    for method, route in (("GET", "/"), ("GET", "/health"), ("POST", "/setup"), ("POST", "/predict"),
                          ("POST", "/webhook"), ("GET", "/metrics"), ("GET", "/docs")):
        assert anonymous.request(method, route, json={}).status_code == 401, (method, route)
        assert client.request(method, route, json={}, auth=("ls", "wrong")).status_code == 401, (method, route)


def test_a_click_and_a_box_give_the_segmenters_own_masks(served):
    client, seg, scene, _ = served
    h, w = scene.image.shape[:2]
    obj = scene.masks()[0]
    ys, xs = np.nonzero(obj)
    x, y = float(xs.mean()) + 0.5, float(ys.mean()) + 0.5
    outside = (2.5, 2.5)
    r = client.post("/predict", json=_body("/data/local-files/?d=scene.png",
                                           {"result": [_keypoint(x, y, w, h), _keypoint(*outside, w, h, False)]}))
    assert r.status_code == 200, r.text
    (pred,) = r.json()["results"]
    (region,) = pred["result"]
    assert region["type"] == "brushlabels" and region["from_name"] == "tag" and region["to_name"] == "image"
    assert region["value"]["brushlabels"] == ["shape"] and pred["model_version"].startswith("samprompt-")
    want = seg.predict(scene.image, Prompt(points=np.array([[x, y], outside]), labels=np.array([1, 0])))
    np.testing.assert_array_equal(_mask(region), want.masks[0])
    assert region["score"] == pytest.approx(float(want.scores[0]), abs=1e-6)
    ys, xs = np.nonzero(obj)
    box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    r = client.post("/predict", json=_body("/data/upload/3/1a2b3c4d-scene.png", {"result": [_rect(box, w, h)]}))
    (region,) = r.json()["results"][0]["result"]
    assert region["value"]["brushlabels"] == ["other"]
    np.testing.assert_array_equal(_mask(region), seg.predict(scene.image, Prompt(box=np.array(box, float))).masks[0])


def test_tasks_without_a_click_are_pre_annotated(served, tmp_path):
    client, seg, scene, root = served
    r = client.post("/predict", json={**_body("/data/local-files/?d=scene.png"),
                                      "tasks": [{"id": 1, "data": {"image": "/data/local-files/?d=scene.png"}}] * 2})
    preds = r.json()["results"]
    assert len(preds) == 2 and preds[0]["result"], "segment everything found nothing"
    want = seg.segment_everything(scene.image)
    assert len(preds[0]["result"]) == len(want.masks)
    np.testing.assert_array_equal(_mask(preds[0]["result"][0]), want.masks[0])
    # boxes from a COCO detections file, matched by file name, labels kept when the project has them
    from samprompt.annotate.ls_backend import Backend, ImageSource, make_app

    boxes = []
    for m in scene.masks()[:2]:  # COCO boxes [x, y, w, h] around two of the scene's objects
        ys, xs = np.nonzero(m)
        boxes.append([int(xs.min()), int(ys.min()), int(xs.max() + 1 - xs.min()), int(ys.max() + 1 - ys.min())])
    coco = {"images": [{"id": 1, "file_name": "scene.png", "width": 160, "height": 120}],
            "categories": [{"id": 1, "name": "other"}, {"id": 2, "name": "car"}],
            "annotations": [{"id": k + 1, "image_id": 1, "category_id": k + 1, "bbox": b, "score": 0.9 - k / 10}
                            for k, b in enumerate(boxes)]}
    (tmp_path / "det.json").write_text(json.dumps(coco))
    det = starlette_testclient.TestClient(make_app(Backend(seg, ImageSource(document_root=root / "docs"),
                                                           detections=tmp_path / "det.json")))
    regions = det.post("/predict", json=_body("/data/local-files/?d=scene.png")).json()["results"][0]["result"]
    assert [r["value"]["brushlabels"] for r in regions] == [["other"], ["shape"]]  # car: not a project label
    assert [r["score"] for r in regions] == pytest.approx([0.9, 0.8])


def test_bad_requests_are_answered_with_a_reason(served):
    client, *_ = served
    cases = [
        (_body("/data/local-files/?d=../secret.png", {"result": [_keypoint(5, 5, 160, 120)]}), "leaves"),
        (_body("../secret.png", {"result": [_keypoint(5, 5, 160, 120)]}), "leaves"),
        (_body("/etc/passwd", {"result": [_keypoint(5, 5, 160, 120)]}), "no file '/etc/passwd' under"),  # rooted
        (_body("/data/local-files/?d=nothing.png", {"result": [_keypoint(5, 5, 160, 120)]}), "no file"),
        (_body("s3://bucket/a.png"), "cannot read the task image"),
        (_body("/data/local-files/?d=scene.png", config="<View><Image name='image' value='$image'/></View>"),
         "no <BrushLabels>"),
        (_body("/data/local-files/?d=scene.png", config="<View"), "not XML"),
    ]
    for body, reason in cases:
        r = client.post("/predict", json=body)
        assert r.status_code == 400 and reason in r.json()["error"], (body["tasks"], r.text)
    assert client.post("/predict", content=b"not json", headers={"content-type": "application/json"}).status_code == 400


def test_images_by_label_studio_url_carry_its_token(served):
    _client, seg, scene, _root = served
    from samprompt.annotate.ls_backend import Backend, ImageSource, make_app

    png = cv2.imencode(".png", scene.image[..., ::-1])[1].tobytes()

    class FakeLabelStudio(BaseHTTPRequestHandler):  # serves its uploads to the token only, as Label Studio does
        def do_GET(self):
            ok = self.headers.get("Authorization") == "Token KEY1" and self.path == "/data/upload/3/x.png"
            self.send_response(200 if ok else 401)
            self.end_headers()
            self.wfile.write(png if ok else b"no")

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLabelStudio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        for key, status in (("KEY1", 200), ("WRONG", 400)):
            app = make_app(Backend(seg, ImageSource(label_studio_url=url, api_key=key)))
            r = starlette_testclient.TestClient(app).post("/predict", json=_body(
                "/data/upload/3/x.png", {"result": [_keypoint(80, 60, 160, 120)]}))
            assert r.status_code == status, r.text
        r = starlette_testclient.TestClient(app).post("/predict", json=_body(
            f"{url}/data/upload/3/x.png", {"result": [_keypoint(80, 60, 160, 120)]}))
        assert r.status_code == 400 and "401" in r.json()["error"]
    finally:
        server.shutdown()


def test_the_command_serves_with_basic_auth_and_refuses_an_open_host(tmp_path):
    import socket

    import requests

    from samprompt import cli

    assert cli.main(["serve", "label-studio", "--host", "0.0.0.0"]) == 2
    assert cli.main(["serve", "label-studio", "--document-root", str(tmp_path / "nowhere")]) == 2  # said at once
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"SAMPROMPT_BACKEND_PASSWORD": "pw", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "samprompt.cli", "serve", "label-studio", "--port", str(port),
                             "--basic-auth", "ls", "--document-root", str(tmp_path)],
                            env={**__import__("os").environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert r.status_code == 401
        token = base64.b64encode(b"ls:pw").decode()
        assert requests.get(f"http://127.0.0.1:{port}/health", headers={"Authorization": f"Basic {token}"},
                            timeout=5).json()["status"] == "UP"
        assert cli.main(["serve", "label-studio", "--port", str(port)]) == 2  # busy: said before the model loads
    finally:
        proc.terminate()
        proc.wait(10)
