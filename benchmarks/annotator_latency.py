"""Click latency of the annotator in a real browser: mouse-down to the new mask on screen.

    python benchmarks/annotator_latency.py [--sizes 256,512,1024] [--clicks 25] [--out docs/data/annotator_latency.json]

Headless chromium driven by Playwright, at 1400 x 1000, the built-in model in
this process. Images: generated scenes of each side (a click on an object's
centre) and, when scikit-image is installed, its 512-px astronaut photo (clicks
on a fixed grid of points). The time runs in the page, from the canvas's
mouse-down handler to the moment the reply's overlay is decoded and drawn on
the canvas (``window.samprompt.drawn``). Each click starts a new object; the
first click of an image is reported apart, p50 and p90 are over the others, and
apart for the clicks made with 1 to 5 objects on the image and with 21 to 25 (a click
must not cost more as objects pile up). A 6000 x 4000 scene (a camera JPEG's size)
has its own row.
The previous app's figures (the whole picture sent back as an image) are kept
in the JSON under ``before``.
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
from samprompt.annotate.app import build_app
from samprompt.annotate.session import Annotator
from samprompt.simulate import center_point
from samprompt.synthetic import make_scene


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settle(page) -> None:
    page.wait_for_function("window.samprompt.pending() === 0", timeout=60_000)


def measure(page, points: list[tuple[float, float]]) -> list[float]:
    """Milliseconds from mouse-down to the drawn reply, one per point."""
    times = []
    for x, y in points:
        p = page.evaluate("([x, y]) => window.samprompt.screenOf(x, y)", [float(x), float(y)])
        page.mouse.click(p["x"], p["y"])
        _settle(page)
        times.append(page.evaluate("() => window.samprompt.drawn.t - window.samprompt.downAt"))
        page.keyboard.press("n")  # the next click starts a new object
        _settle(page)
        page.wait_for_timeout(150)
    return times


def images(sizes: list[int], clicks: int) -> list[tuple[str, np.ndarray, list[tuple[float, float]]]]:
    out = []
    for size in sizes:
        scene = make_scene(31, size=size)
        ids = [k for k in np.unique(scene.labels) if k]
        pts = [center_point(scene.labels == ids[i % len(ids)]) for i in range(clicks + 1)]
        out.append((f"scene {size} px", scene.image, pts))
    scene = make_scene(31, size=(400, 600))  # a camera's 6000 x 4000, as the page gets it: a display copy
    big = cv2.resize(scene.image, (6000, 4000), interpolation=cv2.INTER_NEAREST)
    ids = [k for k in np.unique(scene.labels) if k]
    pts = [tuple(10 * np.array(center_point(scene.labels == ids[i % len(ids)]))) for i in range(clicks + 1)]
    out.append(("scene 6000 x 4000 px (JPEG)", big, pts))
    try:
        from skimage import data
    except ImportError:
        print("scikit-image is not installed: no photo row")
    else:
        photo = data.astronaut()
        grid = [(x, y) for y in (120, 260, 400) for x in (100, 250, 400, 460)][: clicks + 1]
        out.append(("astronaut photo 512 px", photo, grid))
    return out


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256,512,1024")
    ap.add_argument("--clicks", type=int, default=25)
    ap.add_argument("--out", default="docs/data/annotator_latency.json")
    ap.add_argument("--auth", action="store_true",
                    help="sign in first (annotate --users: every request carries the session); the figures go to "
                         "the JSON's rows_auth, the rows without sign-in are kept")
    a = ap.parse_args()
    users = None
    if a.auth:
        from samprompt.annotate.users import User, hash_password

        users = {"ana": User("ana", "annotator", hash_password("correct horse"))}
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    work = Path(tempfile.mkdtemp())
    rows = []
    for name, image, points in images([int(s) for s in a.sizes.split(",")], a.clicks):
        jpeg = "JPEG" in name
        path = work / f"{name.split(' (')[0].replace(' ', '_')}.{'jpg' if jpeg else 'png'}"
        cv2.imwrite(str(path), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92] if jpeg else [])
        seg = Segmenter()
        app = build_app(Annotator(seg, None, work / f"ann_{path.stem}"))
        port = _port()
        from samprompt.annotate.app import auth_check

        app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                   auth=auth_check(users) if users else None)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=60_000)
                if users:  # Gradio's sign-in page, as a person fills it
                    page.get_by_label("username").fill("ana")
                    page.get_by_label("password").fill("correct horse")
                    page.keyboard.press("Enter")
                page.wait_for_selector("#upload input[type=file]", state="attached", timeout=60_000)
                page.set_input_files("#upload input[type=file]", str(path))
                page.wait_for_function("window.samprompt?.drawn?.key", timeout=60_000)
                times = measure(page, points)
                browser.close()
        finally:
            app.close()
        rest = np.array(times[1:])
        few, many = np.array(times[1:6]), np.array(times[21:26])
        rows.append({"image": name, "side": int(max(image.shape[:2])), "first_ms": round(times[0], 1),
                     "p50_ms": round(float(np.median(rest)), 1), "p90_ms": round(float(np.percentile(rest, 90)), 1),
                     "clicks": len(rest),
                     "objects_1_5_p50_ms": round(float(np.median(few)), 1),
                     "objects_1_5_p90_ms": round(float(np.percentile(few, 90)), 1),
                     **({"objects_21_25_p50_ms": round(float(np.median(many)), 1),
                         "objects_21_25_p90_ms": round(float(np.percentile(many, 90)), 1)} if len(many) else {}),
                     "all_ms": [round(t, 1) for t in times]})
        print(rows[-1], flush=True)
    out = Path(a.out)
    if a.auth:  # beside the rows of the same app without sign-in
        doc = json.loads(out.read_text()) if out.exists() else {}
        doc["rows_auth"] = rows
        doc["machine_auth"] = platform.processor() or platform.machine()
        out.write_text(json.dumps(doc, indent=1) + "\n")
        return
    before = json.loads(out.read_text()).get("before") if out.exists() else None
    if before is None and out.exists():
        before = json.loads(out.read_text()).get("rows")  # the first run's figures, from the old app
    doc = {"version": __version__, "machine": platform.processor() or platform.machine(),
           "method": "canvas: mouse-down to the reply's overlay drawn", "rows": rows,
           "before": before}
    out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
