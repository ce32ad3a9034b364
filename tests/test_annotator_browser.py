"""The annotator in a real headless browser (Debian's chromium driven by Playwright).

Skipped when chromium or playwright is missing; `.ci/run` installs both.
Saves a screenshot to tests/artifacts/annotator.png.
"""

import shutil
import socket
from pathlib import Path

import cv2
import pytest
from pycocotools.coco import COCO

from samprompt import Segmenter
from samprompt.annotator import Annotator, build_app, shortcut_js
from samprompt.synthetic import make_scene

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
ARTIFACTS = Path(__file__).parent / "artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_upload_click_mask_second_object_undo_export(tmp_path, tiny_or_random_sam):
    out = tmp_path / "ann"
    seg = Segmenter(tiny_or_random_sam)
    app = build_app(Annotator(seg, None, out))
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, head=shortcut_js())
    scene = make_scene(21, size=256)
    img_path = tmp_path / "scene.png"
    cv2.imwrite(str(img_path), scene.image[..., ::-1])
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=60_000)
            page.wait_for_selector("#upload input[type=file]", state="attached", timeout=60_000)
            page.set_input_files("#upload input[type=file]", str(img_path))
            page.wait_for_function("document.querySelector('#status')?.innerText.includes('opened')", timeout=60_000)
            img = page.locator("#canvas img").first
            img.wait_for(timeout=30_000)
            box = img.bounding_box()
            # click the centre of object 1, in displayed pixels
            from samprompt.simulate import center_point

            def click_object(k):
                x, y = center_point(scene.labels == k)
                img.click(position={"x": x * box["width"] / 256, "y": y * box["height"] / 256})

            click_object(1)
            page.wait_for_function("document.querySelector('#status')?.innerText.includes('object 0')", timeout=60_000)
            page.click("#new")
            page.wait_for_function("document.querySelector('#status')?.innerText.includes('object 1')", timeout=30_000)
            click_object(2)
            page.wait_for_function("document.querySelector('#status')?.innerText.includes('score')", timeout=60_000)
            page.keyboard.press("n")  # keyboard shortcut for "new object"
            page.wait_for_function("document.querySelector('#status')?.innerText.includes('object 2')", timeout=30_000)
            page.keyboard.press("z")  # undo: drop the empty third object
            page.wait_for_function("document.querySelector('#status')?.innerText.includes('undone')", timeout=30_000)
            page.click("#export")
            page.wait_for_function("document.querySelector('#status')?.innerText.includes('exported')", timeout=60_000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "annotator.png"), full_page=True)
            browser.close()
    finally:
        app.close()
    (exported,) = out.glob("scene-*.coco.json")  # an upload saves under its stem and a hash of its content
    api = COCO(str(exported))
    anns = api.loadAnns(api.getAnnIds())
    assert len(anns) == 2
    for a in anns:
        assert api.annToMask(a).sum() > 0
