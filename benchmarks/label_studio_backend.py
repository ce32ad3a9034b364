"""Latency of ``samprompt serve label-studio``'s ``/predict`` for a click on a 1024-px image.

    python benchmarks/label_studio_backend.py [--clicks 20] [--skip-vit-b] [--out docs/data/label_studio_backend.json]

The request is the one Label Studio sends for a smart keypoint (tasks, label_config,
params.context), posted through Starlette's test client to the app in this process, so
the time is the backend's own: reading the image, the encoder on the first click, the
decoder, and the brush RLE of the answer (no network). The first click on an image is
reported apart; p50 and p90 are over the following clicks on the same image (the
embedding cached). Models: the built-in one, and ViT-B with random weights (its
speed is that of the real checkpoint) unless --skip-vit-b.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from timing import machine, machine_line

from samprompt import Segmenter
from samprompt.annotate.ls_backend import Backend, ImageSource, make_app
from samprompt.models import REGISTRY, build_sam
from samprompt.synthetic import make_scene

CONFIG = ('<View><Image name="image" value="$image"/><BrushLabels name="tag" toName="image"><Label value="object"/>'
          '</BrushLabels><KeyPointLabels name="kp" toName="image" smart="true"><Label value="object"/>'
          '</KeyPointLabels></View>')


def click_body(x: float, y: float, w: int, h: int) -> dict:
    point = {"original_width": w, "original_height": h, "type": "keypointlabels", "is_positive": True,
             "from_name": "kp", "to_name": "image", "value": {"x": 100 * x / w, "y": 100 * y / h,
                                                              "keypointlabels": ["object"]}}
    return {"tasks": [{"id": 1, "data": {"image": "/data/local-files/?d=scene.png"}}], "label_config": CONFIG,
            "project": "1.0", "params": {"context": {"result": [point]}}}


def measure(model, root: Path, clicks: int) -> dict:
    from starlette.testclient import TestClient

    scene = make_scene(11, size=(1024, 1024))
    cv2.imwrite(str(root / "scene.png"), scene.image[..., ::-1])
    centres = [np.argwhere(m).mean(0)[::-1] + 0.5 for m in scene.masks()]
    client = TestClient(make_app(Backend(Segmenter(model), ImageSource(document_root=root))))
    times = []
    for k in range(clicks + 1):
        x, y = centres[k % len(centres)]
        t = time.perf_counter()
        r = client.post("/predict", json=click_body(float(x), float(y), 1024, 1024))
        times.append(time.perf_counter() - t)
        assert r.status_code == 200 and r.json()["results"][0]["result"], r.text
    rest = np.array(times[1:]) * 1000
    return {"first_ms": round(times[0] * 1000, 1), "p50_ms": round(float(np.percentile(rest, 50)), 1),
            "p90_ms": round(float(np.percentile(rest, 90)), 1), "clicks": clicks}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clicks", type=int, default=20)
    p.add_argument("--skip-vit-b", action="store_true")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    out = {"machine": machine(), "image": "1024 x 1024 generated scene, PNG under the document root"}
    print(machine_line(out["machine"]), flush=True)
    with tempfile.TemporaryDirectory() as d:
        models = {"tiny": "tiny"}
        if not args.skip_vit_b:
            models["vit_b_random"] = build_sam(REGISTRY["vit_b"].arch).eval()
        for name, model in models.items():
            out[name] = measure(model, Path(d), args.clicks)
            print(name, json.dumps(out[name]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
