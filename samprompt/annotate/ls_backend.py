"""samprompt as a Label Studio ML backend (``samprompt serve label-studio``).

Label Studio talks to an ML backend over a small HTTP protocol (that of its
``label-studio-ml`` SDK): ``GET /health`` (and ``/``), ``POST /setup`` when a project
connects, ``POST /predict`` with the project's labelling config and its tasks,
``POST /webhook`` for annotation events, ``GET /metrics``. This module speaks it with
Starlette, so no second web framework is needed.

``/predict`` does two things:

* **interactive**: a ``context`` holding the user's smart keypoints
  (``keypointlabels`` with ``is_positive``) and/or a smart rectangle
  (``rectanglelabels``) gives one brush mask from SAM, encoded with Label Studio's
  own RLE; the image's embedding is cached, so each further click only decodes;
* **pre-annotation** (no context): each task gets its objects, from a COCO
  detections file's boxes when one is given (``--detections``), else from segment
  everything.

Images are read by URL (a Label Studio URL with the API token), by Label Studio's
upload path (``/data/upload/...``: from its data folder when given, else fetched from
Label Studio), or as local files (``/data/local-files/?d=...``) under a document root.
A path from a request is never trusted: it must resolve inside the folder it names.
"""

from __future__ import annotations

import base64
import hmac
import json
import threading
import urllib.request
from collections import OrderedDict
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

from ..errors import SampromptError
from .label_studio import image_name, mask_result

MAX_IMAGE_BYTES = 256 * 1024 * 1024


class LabelConfig:
    """What a project's labelling config says: the brush tag, the image tag and the smart tags."""

    def __init__(self, xml: str | None) -> None:
        from defusedxml import ElementTree

        self.brush = self.image = None
        self.image_key = "image"
        self.labels: list[str] = []
        if not xml:
            return
        try:
            root = ElementTree.fromstring(xml)
        except (ElementTree.ParseError, ValueError) as exc:
            raise SampromptError(f"the project's labelling config is not XML: {exc}") from None
        for el in root.iter():
            if el.tag == "BrushLabels" and self.brush is None:
                self.brush, self.image = el.get("name"), el.get("toName")
                self.labels = [lab.get("value") for lab in el.iter("Label") if lab.get("value")]
        for el in root.iter("Image"):
            if self.image is None or el.get("name") == self.image:
                self.image = el.get("name")
                self.image_key = (el.get("value") or "$image").lstrip("$")
                break

    def check(self) -> None:
        if self.brush is None:
            raise SampromptError("the project's labelling config has no <BrushLabels>: samprompt answers with "
                                 "brush masks (add <BrushLabels name=\"tag\" toName=\"image\"> with labels)")


class ImageSource:
    """Task images by reference, read through the rules of the module doc; the last few kept."""

    def __init__(self, *, document_root: str | Path | None = None, data_dir: str | Path | None = None,
                 label_studio_url: str | None = None, api_key: str | None = None, keep: int = 4) -> None:
        self.document_root = Path(document_root).resolve() if document_root else None
        self.data_dir = Path(data_dir).resolve() if data_dir else None
        self.url = label_studio_url.rstrip("/") if label_studio_url else None
        self.api_key = api_key
        self.keep = keep
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, ref: str) -> np.ndarray:
        with self._lock:
            if ref in self._recent:
                self._recent.move_to_end(ref)
                return self._recent[ref]
        rgb = self._read(ref)
        with self._lock:
            self._recent[ref] = rgb
            while len(self._recent) > self.keep:
                self._recent.popitem(last=False)
        return rgb

    @staticmethod
    def _inside(root: Path | None, rel: str, what: str) -> Path:
        if root is None:
            raise SampromptError(f"{what} needs --{'document-root' if what == 'a local file' else 'data-dir'}")
        path = (root / rel.lstrip("/")).resolve()
        if not path.is_relative_to(root):
            raise SampromptError(f"{rel!r} leaves {root}: refused")
        if not path.is_file():
            raise SampromptError(f"no file {rel!r} under {root}")
        return path

    def _read(self, ref: str) -> np.ndarray:
        from ..images import to_rgb_uint8

        parsed = urlparse(ref)
        if parsed.scheme in ("http", "https"):
            return self._decode(self._fetch(ref), ref)
        if parsed.path.startswith("/data/local-files"):
            rel = parse_qs(parsed.query).get("d", [""])[0]
            return to_rgb_uint8(str(self._inside(self.document_root, rel, "a local file")))
        if parsed.path.startswith("/data/upload/"):
            if self.data_dir is not None:
                rel = "media/upload/" + parsed.path[len("/data/upload/"):]
                return to_rgb_uint8(str(self._inside(self.data_dir, rel, "an upload")))
            if self.url is None:
                raise SampromptError(f"{ref} is a Label Studio upload: give --data-dir (Label Studio's data folder) "
                                     "or --label-studio-url and --api-key")
            return self._decode(self._fetch(self.url + ref), ref)
        if parsed.scheme in ("", "file"):
            return to_rgb_uint8(str(self._inside(self.document_root, parsed.path, "a local file")))
        raise SampromptError(f"cannot read the task image {ref!r} (scheme {parsed.scheme!r})")

    def _fetch(self, url: str) -> bytes:
        headers = {}
        if self.url and self.api_key and url.startswith(self.url):
            headers["Authorization"] = f"Token {self.api_key}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
                data = r.read(MAX_IMAGE_BYTES + 1)
        except OSError as exc:
            raise SampromptError(f"cannot fetch {url}: {exc}") from None
        if len(data) > MAX_IMAGE_BYTES:
            raise SampromptError(f"{url} is larger than {MAX_IMAGE_BYTES >> 20} MB")
        return data

    @staticmethod
    def _decode(data: bytes, ref: str) -> np.ndarray:
        import cv2

        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise SampromptError(f"{ref} is not an image OpenCV can read")
        return np.ascontiguousarray(img[..., ::-1])


class Backend:
    """The predictions behind the protocol (no HTTP here): one segmenter, one image source."""

    def __init__(self, segmenter, images: ImageSource, *, detections: str | Path | None = None,
                 points_per_side: int = 16) -> None:
        self.segmenter = segmenter
        self.images = images
        self.points_per_side = points_per_side
        self.version = f"samprompt-{segmenter.model_id}"
        self.lock = threading.Lock()  # one model: predictions one at a time
        self.detections: dict[str, list[tuple[str, list[float], float]]] = {}
        if detections:
            self._read_detections(Path(detections))

    def _read_detections(self, path: Path) -> None:
        try:
            coco = json.loads(path.read_text(encoding="utf-8"))
            names = {c["id"]: c["name"] for c in coco.get("categories", [])}
            files = {im["id"]: Path(im["file_name"]).name for im in coco["images"]}
            for ann in coco["annotations"]:
                x, y, w, h = map(float, ann["bbox"])
                self.detections.setdefault(files[ann["image_id"]], []).append(
                    (names.get(ann.get("category_id"), ""), [x, y, x + w, y + h], float(ann.get("score", 1.0))))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SampromptError(f"--detections {path}: not a COCO detections file ({exc})") from None

    def predict(self, body: dict) -> list[dict]:
        config = LabelConfig(body.get("label_config"))
        config.check()
        tasks = body.get("tasks") or []
        context = (body.get("params") or {}).get("context") or body.get("context") or {}
        if not isinstance(tasks, list):
            raise SampromptError("'tasks' must be a list")
        with self.lock:
            if context.get("result"):
                return [self._interactive(tasks[0], context["result"], config)] if tasks else []
            return [self._whole_task(t, config) for t in tasks]

    def _image(self, task: dict, config: LabelConfig) -> tuple[str, np.ndarray]:
        data = task.get("data") or {}
        ref = data.get(config.image_key)
        if not isinstance(ref, str) or not ref:
            raise SampromptError(f"the task has no image under data[{config.image_key!r}]")
        return ref, self.images(ref)

    def _label(self, wanted: str | None, config: LabelConfig) -> str:
        if wanted and (wanted in config.labels or not config.labels):
            return wanted
        return config.labels[0] if config.labels else (wanted or "object")

    def _region(self, mask, label, score, config) -> dict:
        return mask_result(mask, label, from_name=config.brush, to_name=config.image, score=score)

    def _interactive(self, task: dict, regions: list[dict], config: LabelConfig) -> dict:
        from ..prompts import Prompt

        _, rgb = self._image(task, config)
        h, w = rgb.shape[:2]
        points, labels, box, wanted = [], [], None, None
        for r in regions:
            kind, v = str(r.get("type", "")).lower(), r.get("value", {})
            try:
                x, y = float(v["x"]) * w / 100.0, float(v["y"]) * h / 100.0
            except (KeyError, TypeError, ValueError):
                raise SampromptError(f"a {kind or 'context'} region has no x/y") from None
            if kind == "keypointlabels":
                points.append([min(max(x, 0.0), w), min(max(y, 0.0), h)])
                labels.append(1 if r.get("is_positive", True) else 0)
                wanted = (v.get("keypointlabels") or [wanted])[0]
            elif kind == "rectanglelabels":
                bw, bh = float(v.get("width", 0)) * w / 100.0, float(v.get("height", 0)) * h / 100.0
                box = np.clip([x, y, x + bw, y + bh], 0, [w, h, w, h])
                wanted = (v.get("rectanglelabels") or [wanted])[0]
        if not points and box is None:
            return {"result": [], "score": 0.0, "model_version": self.version}
        prompt = Prompt(points=np.array(points, float).reshape(-1, 2),
                        labels=np.array(labels, int) if points else None, box=box)
        res = self.segmenter.predict(rgb, prompt)
        score = res.score
        region = self._region(res.mask, self._label(wanted, config), score, config)
        return {"result": [region], "score": score, "model_version": self.version}

    def _whole_task(self, task: dict, config: LabelConfig) -> dict:
        from ..prompts import Prompt

        ref, rgb = self._image(task, config)
        regions = []
        found = self.detections.get(image_name(ref))
        if self.detections:
            if found:
                results = self.segmenter.predict(rgb, [Prompt(box=np.array(b)) for _, b, _ in found])
                for (name, _, det_score), r in zip(found, results):
                    if r.mask.any():
                        regions.append(self._region(r.mask, self._label(name, config), det_score, config))
        else:
            res = self.segmenter.segment_everything(rgb, points_per_side=self.points_per_side)
            for mask, s in zip(res.masks, res.scores):
                regions.append(self._region(mask, self._label(None, config), float(s), config))
        score = float(np.mean([r["score"] for r in regions])) if regions else 0.0
        return {"result": regions, "score": score, "model_version": self.version}


class _BasicAuth:
    """ASGI wrapper: every HTTP request must carry the basic-auth credentials, or gets 401."""

    def __init__(self, app, credentials: tuple[str, str]) -> None:
        self.app = app
        token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        self.expected = f"Basic {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                from starlette.responses import Response

                await Response("Unauthorized", 401, {"WWW-Authenticate": 'Basic realm="samprompt"'})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def make_app(backend: Backend, basic_auth: tuple[str, str] | None = None):
    """The Starlette app of the protocol; ``basic_auth``: (user, password) every request must carry."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def health(request: Request):
        return JSONResponse({"status": "UP", "model_class": "samprompt", "model_version": backend.version})

    async def body_of(request: Request) -> dict:
        try:
            body = await request.json()
        except ValueError:
            raise SampromptError("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise SampromptError("the request body is not a JSON object")
        return body

    async def setup(request: Request):
        await body_of(request)
        return JSONResponse({"model_version": backend.version})

    async def predict(request: Request):
        from starlette.concurrency import run_in_threadpool

        body = await body_of(request)
        results = await run_in_threadpool(backend.predict, body)
        return JSONResponse({"results": results})

    async def webhook(request: Request):
        body = await body_of(request)
        if body.get("action") not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED",
                                      "START_TRAINING"):
            return JSONResponse({"status": "Unknown event"})
        return JSONResponse({"status": "ok", "result": "samprompt does not train from annotations; "
                             "use samprompt tune on an exported dataset"}, status_code=201)

    async def metrics(request: Request):
        return JSONResponse({})

    async def bad_input(request: Request, exc: SampromptError):
        return JSONResponse({"status": "error", "error": str(exc)}, status_code=400)

    app = Starlette(routes=[Route("/", health), Route("/health", health), Route("/setup", setup, methods=["POST"]),
                            Route("/predict", predict, methods=["POST"]), Route("/webhook", webhook, methods=["POST"]),
                            Route("/metrics", metrics)],
                    exception_handlers={SampromptError: bad_input})
    if basic_auth is not None:
        return _BasicAuth(app, basic_auth)
    return app


__all__ = ["Backend", "ImageSource", "LabelConfig", "make_app"]
