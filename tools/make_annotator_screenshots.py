"""Screenshots of the annotator for the README: a generated scene being annotated, and a CT volume.

    python tools/make_annotator_screenshots.py [--out docs]

Runs the app with the built-in model on generated data in headless chromium
(1400 x 1000) and drives it as a user would: a dragged box, clicks, a second
class, the segment-everything proposal; then a volume: a key-slice box,
propagation, another slice. Writes ``annotator.png`` and ``annotator_volume.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import tempfile
from pathlib import Path

import cv2
import numpy as np

from samprompt import Segmenter
from samprompt.annotate.app import build_app
from samprompt.annotate.session import Annotator
from samprompt.masks import iou, rle_to_mask
from samprompt.simulate import center_point
from samprompt.synthetic import make_scene
from samprompt.synthetic.volumes import make_volume, save_nifti


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _at(page, x, y):
    p = page.evaluate("([x, y]) => window.samprompt.screenOf(x, y)", [float(x), float(y)])
    return p["x"], p["y"]


def _settle(page):
    page.wait_for_function("window.samprompt.pending() === 0", timeout=60_000)


def _drag(page, a, b):
    page.mouse.move(*_at(page, *a))
    page.mouse.down()
    page.mouse.move(*_at(page, *b), steps=6)
    page.mouse.up()
    _settle(page)


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs")
    a = ap.parse_args()
    out = Path(a.out)
    work = Path(tempfile.mkdtemp())
    folder = work / "data"
    folder.mkdir()
    scenes = [make_scene(s, size=512) for s in (26, 0, 6)]
    for i, sc in enumerate(scenes):
        cv2.imwrite(str(folder / f"scene_{i:02d}.png"), sc.image[..., ::-1])
    vol = make_volume(3, shape=(128, 128, 40))
    save_nifti(folder / "ct_0003.nii.gz", vol.data, vol.affine)
    annotator = Annotator(Segmenter("tiny"), folder, work / "ann")
    annotator.set_classes(["object", "round", "bar"])
    app = build_app(annotator)
    port = _port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            chromium = shutil.which("chromium") or shutil.which("chromium-browser")
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=60_000)
            page.wait_for_function("window.samprompt?.drawn?.key", timeout=60_000)
            sc = scenes[0]
            ids = sorted((k for k in np.unique(sc.labels) if k), key=lambda k: -int((sc.labels == k).sum()))

            def last_iou(k):  # the newest object's mask against the truth, from the autosaved file
                doc = json.loads((work / "ann" / "scene_00.annotation.json").read_text())
                rle = doc["objects"][-1]["accepted_mask"]
                return iou(rle_to_mask(rle), sc.labels == k) if rle else 0.0

            kept = 0
            for n, k in enumerate(ids):
                page.keyboard.press("3" if n % 2 == 0 else "1")  # a dragged box, then a click, in turn
                if n % 2 == 0:
                    ys, xs = np.nonzero(sc.labels == k)
                    _drag(page, (xs.min() - 2, ys.min() - 2), (xs.max() + 3, ys.max() + 3))
                else:
                    page.mouse.click(*_at(page, *center_point(sc.labels == k)))
                    _settle(page)
                if last_iou(k) < 0.75:  # show what the built-in model does well; the docs say what it cannot
                    page.keyboard.press("z")
                    _settle(page)
                    continue
                kept += 1
                page.keyboard.press("n")
                _settle(page)
                if kept == 2:
                    page.fill("#label input", "round")
                    page.press("#label input", "Enter")
                    page.wait_for_timeout(300)
                if kept == 4:
                    break
            page.keyboard.press("z")  # drop the last empty object
            page.keyboard.press("s")  # segment everything: the first proposal is outlined
            _settle(page)
            page.mouse.move(*_at(page, 300, 300))
            page.wait_for_timeout(300)
            page.screenshot(path=str(out / "annotator.png"))
            page.click("#canvas .sp-file >> nth=3")  # the volume
            page.wait_for_function("window.samprompt.doc()?.volume", timeout=60_000)
            liver = vol.labels == 1
            z = int(liver.sum(axis=(0, 1)).argmax())
            page.eval_on_selector("#canvas .sp-slice", f"el => {{ el.value = {z}; el.dispatchEvent(new Event('input')); }}")
            page.wait_for_function(f"window.samprompt.drawn.key === 'ct_0003-z{z}'", timeout=30_000)
            ii, jj = np.nonzero(liver[:, :, z])
            page.fill("#label input", "liver")
            page.press("#label input", "Enter")
            page.wait_for_timeout(300)
            page.keyboard.press("3")
            _drag(page, (ii.min(), jj.min()), (ii.max() + 1, jj.max() + 1))
            page.click("#canvas .sp-propagate")
            page.wait_for_function("document.querySelector('#status').innerText.includes('propagated')",
                                   timeout=60_000)
            for _ in range(4):
                page.keyboard.press("ArrowDown")
            page.wait_for_function(f"window.samprompt.drawn.key === 'ct_0003-z{z - 4}'", timeout=30_000)
            _settle(page)
            page.screenshot(path=str(out / "annotator_volume.png"))
            browser.close()
    finally:
        app.close()
    for name in ("annotator.png", "annotator_volume.png"):
        print(out / name, (out / name).stat().st_size // 1024, "KB")


if __name__ == "__main__":
    main()
