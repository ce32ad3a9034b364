"""Click latency of the annotator in a real browser: mouse-down to the new mask on screen.

    python benchmarks/annotator_latency.py [--sizes 256,512,1024] [--clicks 10] [--out docs/data/annotator_latency.json]

For each size, a generated scene of that side is uploaded into ``samprompt annotate`` (built-in
model, this process) in headless chromium driven by Playwright, at 1400 x 1000. Each click
lands on an object's centre. The time runs in the page, from just before the mouse-down to the
first animation frame in which the canvas shows a new image that has finished loading. The
first click (the image's encoding) is reported apart; p50 and p90 are over the others.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import tempfile
from pathlib import Path

import cv2
import numpy as np

from samprompt import Segmenter, __version__
from samprompt.annotator import Annotator, build_app, shortcut_js
from samprompt.simulate import center_point
from samprompt.synthetic import make_scene

WAIT = """prev => {
  const img = document.querySelector('#canvas img');
  if (img && img.src !== prev && img.complete && img.naturalWidth > 0) { window.__t1 = performance.now(); return true; }
  return false;
}"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(page, scene, size: int, clicks: int) -> list[float]:
    img = page.locator("#canvas img").first
    img.wait_for(timeout=60_000)
    times = []
    ids = [k for k in np.unique(scene.labels) if k][: clicks]
    for i in range(clicks):
        k = ids[i % len(ids)]
        x, y = center_point(scene.labels == k)
        box = img.bounding_box()  # bring the point into the viewport first (a large image is taller than it)
        page.evaluate("dy => window.scrollBy(0, dy)", box["y"] + y * box["height"] / size - 500)
        box = img.bounding_box()
        prev = page.evaluate("() => document.querySelector('#canvas img').src")
        page.evaluate("() => { window.__t0 = performance.now(); }")
        page.mouse.click(box["x"] + x * box["width"] / size, box["y"] + y * box["height"] / size)
        page.wait_for_function(WAIT, arg=prev, timeout=60_000, polling="raf")
        times.append(page.evaluate("() => window.__t1 - window.__t0"))
        page.keyboard.press("n")  # the next click starts a new object; wait until the page has settled
        page.wait_for_function(f"document.querySelector('#status')?.innerText.startsWith('object {i + 1}')",
                               timeout=60_000)
        page.wait_for_timeout(500)
    return times


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256,512,1024")
    ap.add_argument("--clicks", type=int, default=10)
    ap.add_argument("--out", default="docs/data/annotator_latency.json")
    a = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    work = Path(tempfile.mkdtemp())
    rows = []
    for size in [int(s) for s in a.sizes.split(",")]:
        scene = make_scene(31, size=size)
        path = work / f"scene{size}.png"
        cv2.imwrite(str(path), scene.image[..., ::-1])
        app = build_app(Annotator(Segmenter(), None, work / f"ann{size}"))
        port = _port()
        app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, head=shortcut_js())
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=60_000)
                page.wait_for_selector("#upload input[type=file]", state="attached", timeout=60_000)
                page.set_input_files("#upload input[type=file]", str(path))
                page.wait_for_function("document.querySelector('#status')?.innerText.includes('opened')",
                                       timeout=60_000)
                times = measure(page, scene, size, a.clicks + 1)
                browser.close()
        finally:
            app.close()
        rest = np.array(times[1:])
        rows.append({"size": size, "first_ms": round(times[0], 1), "p50_ms": round(float(np.median(rest)), 1),
                     "p90_ms": round(float(np.percentile(rest, 90)), 1), "clicks": len(rest),
                     "all_ms": [round(t, 1) for t in times]})
        print(rows[-1], flush=True)
    doc = {"version": __version__, "machine": platform.processor() or platform.machine(), "rows": rows}
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
