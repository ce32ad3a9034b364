"""The annotator in a real headless browser (Debian's chromium driven by Playwright).

Skipped when chromium or playwright is missing; `.ci/run` installs both. Every
action goes through the page as a user's would: mouse on the canvas, keys,
the file list, the slice slider. Screenshots go to tests/artifacts/.
"""

import json
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from samprompt import Segmenter
from samprompt.annotate.app import build_app
from samprompt.annotate.session import Annotator
from samprompt.simulate import center_point
from samprompt.synthetic import make_scene

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
ARTIFACTS = Path(__file__).parent / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@contextmanager
def serve(annotator, port=None):
    app = build_app(annotator)
    port = port or _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


def open_page(browser, url, wait_key=True):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(url, wait_until="load", timeout=60_000)
    page.wait_for_function("window.samprompt && window.samprompt.drawn", timeout=60_000)
    if wait_key:
        page.wait_for_function("window.samprompt.drawn.key", timeout=60_000)
    return page


def settle(page):
    """Wait until every command the page sent has come back and been drawn."""
    page.wait_for_function("window.samprompt.pending() === 0", timeout=60_000)


def status(page) -> str:
    return page.inner_text("#status")


def at(page, x, y):
    """Page coordinates of image pixel position (x, y) as the canvas shows it now."""
    p = page.evaluate("([x, y]) => window.samprompt.screenOf(x, y)", [float(x), float(y)])
    return p["x"], p["y"]


def click(page, x, y, **kw):
    page.mouse.click(*at(page, x, y), **kw)
    settle(page)


def drag(page, a, b, steps=6):
    page.mouse.move(*at(page, *a))
    page.mouse.down()
    page.mouse.move(*at(page, *b), steps=steps)
    page.mouse.up()
    settle(page)



def box_propagate_and_step_up(page, key: str, index: int, a, b) -> None:
    """On a volume or video: go to slice/frame ``index`` (drawn key ``KEY + index``), box (the box tool, a
    real drag from ``a`` to ``b``), propagate, then ArrowUp twice to ``index + 2``."""
    page.eval_on_selector("#canvas .sp-slice", f"el => {{ el.value = {index}; el.dispatchEvent(new Event('input')); }}")
    page.wait_for_function(f"window.samprompt.drawn.key === '{key}{index}'", timeout=30_000)
    page.keyboard.press("3")
    drag(page, a, b)
    assert "score" in status(page)
    page.click("#canvas .sp-propagate")
    page.wait_for_function("document.querySelector('#status').innerText.includes('propagated')", timeout=60_000)
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    page.wait_for_function(f"window.samprompt.drawn.key === '{key}{index + 2}'", timeout=30_000)

def saved(out: Path, key: str) -> dict:
    return json.loads((out / f"{key}.annotation.json").read_text())


def _until(check, seconds=30.0):
    import time

    end = time.time() + seconds
    while not check():
        assert time.time() < end, "timed out"
        time.sleep(0.05)


def _scene_folder(path: Path, sizes=(256, 256)) -> tuple[Path, list]:
    path.mkdir(parents=True, exist_ok=True)
    scenes = []
    for i, size in enumerate(sizes):
        scene = make_scene(21 + i, size=size)
        cv2.imwrite(str(path / f"scene{i}.png"), scene.image[..., ::-1])
        scenes.append(scene)
    return path, scenes


# ---------------------------------------------------------------------------------------------------------
def test_upload_click_mask_second_object_undo_export(browser, tmp_path, tiny_or_random_sam):
    out = tmp_path / "ann"
    scene = make_scene(21, size=256)
    img_path = tmp_path / "scene.png"
    cv2.imwrite(str(img_path), scene.image[..., ::-1])
    with serve(Annotator(Segmenter(tiny_or_random_sam), None, out)) as url:
        page = open_page(browser, url, wait_key=False)
        page.set_input_files("#upload input[type=file]", str(img_path))
        page.wait_for_function("document.querySelector('#status')?.innerText.includes('opened')", timeout=60_000)
        page.wait_for_function("window.samprompt.drawn.key", timeout=60_000)
        x, y = center_point(scene.labels == 1)
        # no flash: right after the mouse-down, before any reply, the canvas still shows the picture
        sx, sy = at(page, x, y)
        before = page.evaluate("([x, y]) => Array.from(document.querySelector('#canvas canvas').getContext('2d')"
                               ".getImageData(x, y, 1, 1).data)", [200, 200])
        page.mouse.click(sx, sy)
        during, point = page.evaluate(
            """([x, y]) => { const cv = document.querySelector('#canvas canvas'), r = cv.getBoundingClientRect();
                 const px = (u, v) => Array.from(cv.getContext('2d').getImageData(u, v, 1, 1).data);
                 return [px(200, 200), px(Math.round(x - r.left), Math.round(y - r.top)), window.samprompt.pending()]; }""",
            [sx, sy])[:2]
        assert during == before != [30, 30, 36, 255]
        assert point == [34, 197, 94, 255]  # the point is drawn as placed, before any reply
        settle(page)
        assert "object 0" in status(page)
        page.keyboard.press("n")
        settle(page)
        assert "object 1" in status(page)
        click(page, *center_point(scene.labels == 2))
        assert "score" in status(page)
        page.keyboard.press("n")
        page.keyboard.press("z")  # at once: undo drops the empty third object, in order
        settle(page)
        assert "undone" in status(page)
        page.click("#redo")  # a button now has the focus: the keys still work
        page.wait_for_function("document.querySelector('#status')?.innerText.includes('redone')", timeout=60_000)
        page.keyboard.press(" ")  # space (held to pan) does not press the focused button
        page.wait_for_timeout(600)
        assert "redone" in status(page)
        page.keyboard.press("z")
        settle(page)
        assert "undone" in status(page)
        page.keyboard.press("e")
        page.wait_for_function("document.querySelector('#status')?.innerText.includes('exported')", timeout=60_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "annotator.png"))
        assert page.errors == []
        page.close()
    (exported,) = out.glob("scene-*.coco.json")  # an upload saves under its stem and a hash of its content
    api = COCO(str(exported))
    anns = api.loadAnns(api.getAnnIds())
    assert len(anns) == 2
    for a in anns:
        assert api.annToMask(a).sum() > 0


def test_drag_box_zoom_brush_and_polygon_edit(browser, tmp_path):
    folder, scenes = _scene_folder(tmp_path / "imgs", sizes=(256,))
    out = tmp_path / "ann"
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        page = open_page(browser, url)
        page.on("dialog", lambda d: d.accept())  # "replace the hand edits?": yes
        page.keyboard.press("3")
        page.mouse.move(*at(page, 40, 50))
        page.mouse.down()
        page.mouse.move(*at(page, 120, 130), steps=5)
        # while dragging, the first corner and the rubber band are on screen (no reply needed)
        assert page.evaluate("window.samprompt.pending()") == 0
        page.mouse.up()
        settle(page)
        box = saved(out, "scene0")["objects"][0]["box"]
        np.testing.assert_allclose(box, [40, 50, 120, 130], atol=0.6)
        # zoom in about a point with the wheel; clicks still land on the right pixel
        cx, cy = center_point(scenes[0].labels == 2)
        page.mouse.move(*at(page, cx - 20, cy + 10))
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(100)
        view = page.evaluate("window.samprompt.view()")
        assert view["scale"] > 2 * 1.0
        page.keyboard.press("n")
        page.keyboard.press("1")
        settle(page)
        click(page, cx + 0.25, cy - 0.25)
        (px, py), = saved(out, "scene0")["objects"][1]["points"]
        assert abs(px - cx - 0.25) < 0.3 and abs(py - cy + 0.25) < 0.3, (px, py, cx, cy)
        page.keyboard.press("f")  # fit the image again
        # brush, then a SAM click on the same object: the browser asks first (accepted above)
        page.keyboard.press("4")
        drag(page, (cx - 30, cy + 20), (cx + 10, cy + 25))
        assert "painted" in status(page)
        doc = saved(out, "scene0")["objects"][1]
        assert doc["edited"] is True
        page.keyboard.press("1")
        click(page, cx, cy)
        settle(page)
        assert saved(out, "scene0")["objects"][1]["edited"] is False
        # polygon vertices: drag one outwards; the exported mask is the edited one
        page.keyboard.press("6")
        settle(page)
        polys = page.evaluate("() => window.samprompt.doc().polygons")
        vx, vy = polys[0][0]
        drag(page, (vx, vy), (vx + 12, vy - 9), steps=4)
        assert "polygon edited" in status(page)
        after = page.evaluate("() => window.samprompt.doc().polygons")
        assert any(abs(p[0] - (vx + 12)) < 1.5 and abs(p[1] - (vy - 9)) < 1.5 for p in after[0])
        page.screenshot(path=str(tmp_path / "canvas.png"))
        assert page.errors == []
        page.close()


def test_classes_stay_across_a_reload_and_two_tabs_never_overwrite_each_other(browser, tmp_path):
    folder, scenes = _scene_folder(tmp_path / "imgs")
    out = tmp_path / "ann"
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        a = open_page(browser, url)
        a.fill("#classes textarea, #classes input", "object, bar")
        a.press("#classes textarea, #classes input", "Tab")
        _until(lambda: "bar" in (out / "classes.json").read_text() if (out / "classes.json").exists() else False)
        a.fill("#label input", "bar")
        a.press("#label input", "Enter")
        a.wait_for_timeout(300)
        b = open_page(browser, url)  # a second tab on the same image, opened before any save
        x, y = center_point(scenes[0].labels == 1)
        click(a, x, y)
        assert "bar" in status(a)
        click(b, 10, 10)
        assert "another tab" in status(b)  # refused, and told; the first tab's object is safe
        assert [o["label"] for o in saved(out, "scene0")["objects"]] == ["bar"]
        b.reload()
        b.wait_for_function("window.samprompt && window.samprompt.drawn && window.samprompt.drawn.key",
                            timeout=60_000)
        assert "resumed 1 objects" in status(b)
        assert saved(out, "scene0")["revision"] == 1  # opening an image never rewrites its save file
        legend = b.inner_text("#canvas .sp-legend")
        assert legend.split() == ["object", "bar"]  # the folder's classes, in their order, after a reload
        assert b.input_value("#classes textarea, #classes input") == "object, bar"
        colour = lambda p: p.evaluate("() => [...document.querySelectorAll('#canvas .sp-class i')]"  # noqa: E731
                                      ".map(i => i.style.background)")
        assert colour(a) == colour(b)
        a.keyboard.press("e")
        a.wait_for_function("document.querySelector('#status')?.innerText.includes('exported')", timeout=60_000)
        assert (out / "labels" / "scene0.txt").read_text().split()[0] == "1"  # bar is YOLO class 1
        assert a.errors == [] and b.errors == []
        a.close()
        b.close()


def test_images_with_the_same_clean_name_are_kept_apart(browser, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "x y.png"), make_scene(3, size=(96, 128)).image[..., ::-1])
    cv2.imwrite(str(folder / "x_y.png"), make_scene(4, size=(120, 100)).image[..., ::-1])
    out = tmp_path / "ann"
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        page = open_page(browser, url)
        click(page, 30, 30)
        page.click("#canvas .sp-file >> nth=1")  # the file list: jump to the other one
        page.wait_for_function("window.samprompt.doc().file === 'x_y.png'", timeout=60_000)
        settle(page)
        click(page, 50, 60)
        files = page.inner_text("#canvas .sp-files")
        assert files.count("●") == 2  # both show as saved
        page.close()
    docs = [json.loads(p.read_text()) for p in sorted(out.glob("*.annotation.json"))]
    assert sorted((d["file_name"], tuple(d["image_size"])) for d in docs) == [("x y.png", (96, 128)),
                                                                                ("x_y.png", (120, 100))]


def test_a_volume_slice_box_propagate_and_export(browser, tmp_path):
    nib = pytest.importorskip("nibabel")
    pytest.importorskip("monai")
    from samprompt.domains.medical import dice_3d
    from samprompt.synthetic.volumes import make_volume, save_nifti

    folder = tmp_path / "vols"
    v = make_volume(3, shape=(96, 96, 30), orientation="RAS")
    save_nifti(folder / "ct3.nii.gz", v.data, v.affine)
    out = tmp_path / "ann"
    liver = v.labels == 1
    k = int(liver.sum(axis=(0, 1)).argmax())
    ii, jj = np.nonzero(liver[:, :, k])
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        page = open_page(browser, url)
        assert "opened volume ct3.nii.gz" in status(page)
        box_propagate_and_step_up(page, "ct3-z", k, (ii.min(), jj.min()), (ii.max() + 1, jj.max() + 1))
        assert f"{k + 2} / 29" in page.inner_text("#canvas .sp-volume")
        assert page.evaluate("() => window.samprompt.doc().polygons.length") > 0  # the object is on this slice
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "annotator_volume.png"))
        page.select_option("#canvas .sp-plane", "coronal")  # the same object, cut the other way
        page.wait_for_function("(window.samprompt.drawn.key || '').startsWith('ct3-y')", timeout=30_000)
        assert page.evaluate("() => window.samprompt.doc().polygons.length") > 0
        page.keyboard.press("e")
        page.wait_for_function("document.querySelector('#status').innerText.includes('exported')", timeout=60_000)
        assert page.errors == []
        page.close()
    seg = nib.load(out / "ct3_seg.nii.gz")
    src = nib.load(folder / "ct3.nii.gz")
    np.testing.assert_allclose(seg.affine, src.affine)
    assert seg.shape == src.shape
    assert dice_3d(np.asarray(seg.dataobj) == 1, liver) > 0.65


def _select_text(page, how):
    """Leave page text selected the ways hands do: ctrl-A, a drag from the file list's title off the canvas,
    a double-click on a label."""
    if how == "ctrl-a":
        page.mouse.click(5, 5)  # the page, not a text field
        page.keyboard.press("Control+a")
    elif how == "drag-off-canvas":
        box = page.locator("#canvas .sp-files-title").bounding_box()
        page.mouse.move(box["x"] + 1, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + 300, box["y"] + 120, steps=5)
        page.mouse.up()
    else:
        page.locator("#canvas .sp-files-title").dblclick()
    assert page.evaluate("() => String(window.getSelection()).length") > 0


@pytest.mark.parametrize("how", ["ctrl-a", "drag-off-canvas", "dblclick-label"])
def test_selected_page_text_never_disables_drags_or_leaves_a_phantom_box(browser, tmp_path, how):
    """Issue 30, item 1: with page text selected, a box drag, a brush stroke and a vertex drag all reach the
    server, and the next click in another tool saves no box the user never drew."""
    folder, scenes = _scene_folder(tmp_path / "imgs", sizes=(256,))
    out = tmp_path / "ann"
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        page = open_page(browser, url)
        page.on("dialog", lambda d: d.accept())
        page.keyboard.press("3")
        _select_text(page, how)
        drag(page, (40, 50), (120, 130))
        objs = saved(out, "scene0")["objects"]
        assert len(objs) == 1 and objs[0]["box"] is not None, "the box drag was lost"
        np.testing.assert_allclose(objs[0]["box"], [40, 50, 120, 130], atol=0.6)
        _select_text(page, how)
        page.keyboard.press("4")  # brush
        drag(page, (60, 60), (100, 70))
        assert saved(out, "scene0")["objects"][0]["edited"] is True, "the brush stroke was lost"
        page.keyboard.press("6")
        settle(page)
        _select_text(page, how)
        vx, vy = page.evaluate("() => window.samprompt.doc().polygons")[0][0]
        before = saved(out, "scene0")["revision"]
        drag(page, (vx, vy), (vx + 10, vy + 8), steps=4)
        assert saved(out, "scene0")["revision"] > before, "the vertex drag was not saved"
        page.keyboard.press("n")
        page.keyboard.press("3")
        drag(page, (-3, 150), (60, 200))  # starting beside the image, left of it: clamped to its edge
        np.testing.assert_allclose(saved(out, "scene0")["objects"][-1]["box"], [0, 150, 60, 200], atol=0.6)
        page.keyboard.press("n")
        page.keyboard.press("1")
        settle(page)
        click(page, 200, 200)  # a point: only a point, no box from an interrupted drag
        last = saved(out, "scene0")["objects"][-1]
        assert last["box"] is None and len(last["points"]) == 1
        assert page.errors == []
        page.close()


def test_undo_after_accept_then_discard_brings_back_the_discarded_proposal(browser, tmp_path):
    """Issue 30, item 13: discard is an undo step; z after accept + discard keeps the accepted object."""
    folder, _ = _scene_folder(tmp_path / "imgs", sizes=(256,))
    out = tmp_path / "ann"
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        page = open_page(browser, url)
        page.keyboard.press("s")
        page.wait_for_function("document.querySelector('#status')?.innerText.includes('proposals')",
                               timeout=60_000)
        n = int(status(page).split()[0])
        assert n >= 2
        page.keyboard.press("a")
        settle(page)
        page.keyboard.press("d")
        settle(page)
        assert f"{n - 2} left" in status(page)
        page.keyboard.press("z")
        settle(page)
        assert len(saved(out, "scene0")["objects"]) == 1  # the accepted object stays
        page.keyboard.press("d")  # the proposal came back: discarding it again leaves n - 2
        settle(page)
        assert f"{n - 2} left" in status(page)
        assert page.errors == []
        page.close()


def test_class_ids_and_colours_are_append_only_across_widgets_and_tabs(browser, tmp_path):
    """Issue 30, item 2: a class from the dropdown shows in the box; a stale box in another tab can add but never
    reorder or drop; YOLO ids and colours stay put."""
    folder, scenes = _scene_folder(tmp_path / "imgs")
    out = tmp_path / "ann"
    box_sel = "#classes textarea, #classes input"
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        a = open_page(browser, url)
        b = open_page(browser, url)  # opened now: its class box will be stale
        a.fill("#label input", "cat")
        a.press("#label input", "Enter")
        a.wait_for_function(f"document.querySelector('{box_sel}').value.includes('cat')", timeout=30_000)
        click(a, *center_point(scenes[0].labels == 1))
        a.keyboard.press("e")
        a.wait_for_function("document.querySelector('#status')?.innerText.includes('exported')", timeout=60_000)
        assert (out / "labels" / "scene0.txt").read_text().split()[0] == "1"  # cat is id 1
        cat_colour = a.evaluate("() => [...document.querySelectorAll('#canvas .sp-class')]"
                                ".find(e => e.innerText.includes('cat')).querySelector('i').style.background")
        assert b.input_value(box_sel) == "object"  # stale, as a real second tab would be
        b.fill(box_sel, "dog, object")  # it knows nothing of cat, and puts dog first
        b.press(box_sel, "Tab")
        _until(lambda: json.loads((out / "classes.json").read_text()) == ["object", "cat", "dog"])
        b.wait_for_function(f"document.querySelector('{box_sel}').value === 'object, cat, dog'", timeout=30_000)
        assert "kept" in status(b)  # told why its order was not taken
        a.reload()
        a.wait_for_function("window.samprompt && window.samprompt.drawn && window.samprompt.drawn.key",
                            timeout=60_000)
        click(a, 10, 10)
        a.keyboard.press("e")
        a.wait_for_function("document.querySelector('#status')?.innerText.includes('exported')", timeout=60_000)
        assert (out / "classes.txt").read_text().split() == ["object", "cat", "dog"]
        assert (out / "labels" / "scene0.txt").read_text().split()[0] == "1"  # still 1
        assert a.evaluate("() => [...document.querySelectorAll('#canvas .sp-class')]"
                          ".find(e => e.innerText.includes('cat')).querySelector('i').style.background") == cat_colour
        assert a.errors == [] and b.errors == []
        a.close()
        b.close()


def test_a_corrupt_file_is_marked_and_skipped_and_reload_and_restart_reopen_the_last_file(browser, tmp_path):
    """Issue 30, items 4 and 9: next, the arrow key and done-then-advance step over a broken file, which the list
    marks; a reload and a server restart come back to the file the user was on, not to file 1."""
    folder, _ = _scene_folder(tmp_path / "imgs", sizes=(128, 128, 128))
    (folder / "scene0b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 20)  # sorts between 0 and 1
    out = tmp_path / "ann"
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        page = open_page(browser, url)
        assert page.evaluate("() => window.samprompt.doc().file") == "scene0.png"
        page.keyboard.press("ArrowRight")
        page.wait_for_function("window.samprompt.doc().file === 'scene1.png'", timeout=30_000)
        assert "scene0b.png" in status(page)  # said: skipped, and why
        assert "sp-broken" in page.get_attribute("#canvas .sp-file >> nth=1", "class")
        page.keyboard.press("ArrowLeft")  # back over it too
        page.wait_for_function("window.samprompt.doc().file === 'scene0.png'", timeout=30_000)
        page.keyboard.press("Enter")  # done, then the next unfinished file: not the broken one
        page.wait_for_function("window.samprompt.doc().file === 'scene1.png'", timeout=30_000)
        page.keyboard.press("ArrowRight")
        page.wait_for_function("window.samprompt.doc().file === 'scene2.png'", timeout=30_000)
        settle(page)
        page.reload()
        page.wait_for_function("window.samprompt && window.samprompt.drawn && window.samprompt.drawn.key",
                               timeout=60_000)
        assert page.evaluate("() => window.samprompt.doc().file") == "scene2.png"
        page.close()
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:  # a restart
        page = open_page(browser, url)
        assert page.evaluate("() => window.samprompt.doc().file") == "scene2.png"
        assert page.errors == []
        page.close()


def _small_ct(tmp_path: Path) -> Path:
    """A folder with one generated 64 x 64 x 20 CT, ct4.nii.gz (skips without the medical extra)."""
    pytest.importorskip("nibabel")
    pytest.importorskip("monai")
    from samprompt.synthetic.volumes import make_volume, save_nifti

    folder = tmp_path / "vols"
    v = make_volume(4, shape=(64, 64, 20), orientation="RAS")
    save_nifti(folder / "ct4.nii.gz", v.data, v.affine)
    return folder


def test_arrow_keys_move_slices_after_the_plane_and_window_menus_are_used_with_the_mouse(browser, tmp_path):
    """Issue 30, item 14: a menu picked with the mouse gives the keyboard back to the canvas."""
    folder = _small_ct(tmp_path)
    with serve(Annotator(Segmenter("tiny"), folder, tmp_path / "ann")) as url:
        page = open_page(browser, url)
        page.click("#canvas .sp-plane")  # picked by hand: the menu opens and keeps the focus
        planes = page.eval_on_selector_all("#canvas .sp-plane option", "els => els.map(e => e.value)")
        for _ in range(planes.index("coronal") - planes.index(page.eval_on_selector("#canvas .sp-plane",
                                                                                     "el => el.value"))):
            page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        page.wait_for_function("window.samprompt.drawn.key === 'ct4-y32'", timeout=30_000)
        page.keyboard.press("ArrowUp")
        page.wait_for_function("window.samprompt.drawn.key === 'ct4-y33'", timeout=30_000)
        assert page.eval_on_selector("#canvas .sp-plane", "el => el.value") == "coronal"  # the plane did not move
        first_window = page.eval_on_selector("#canvas .sp-window", "el => el.value")
        options = page.eval_on_selector_all("#canvas .sp-window option", "els => els.map(e => e.value)")
        page.click("#canvas .sp-window")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        settle(page)
        page.keyboard.press("ArrowDown")
        page.wait_for_function("window.samprompt.drawn.key === 'ct4-y32'", timeout=30_000)
        assert page.eval_on_selector("#canvas .sp-window", "el => el.value") == options[1] != first_window
        page.keyboard.press("n")  # and the shortcuts work again
        settle(page)
        assert "object" in status(page)
        assert page.errors == []
        page.close()


def test_a_6000_by_4000_camera_jpeg_is_annotated_and_exported_at_full_resolution(browser, tmp_path):
    """Issue 30, item 8: a large photo opens (the page gets a display copy), clicks land on the right
    full-resolution pixel and the masks and exports keep every pixel."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    scene = make_scene(31, size=(400, 600))
    big = cv2.resize(scene.image, (6000, 4000), interpolation=cv2.INTER_NEAREST)
    labels = cv2.resize(scene.labels, (6000, 4000), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(folder / "camera.jpg"), big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    out = tmp_path / "ann"
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        page = open_page(browser, url)
        assert page.evaluate("() => [window.samprompt.doc().w, window.samprompt.doc().h]") == [6000, 4000]
        x, y = center_point(labels == 1)
        click(page, x, y)
        doc = saved(out, "camera")
        assert doc["image_size"] == [4000, 6000]
        (px, py), = doc["objects"][0]["points"]
        assert abs(px - x) < 12 and abs(py - y) < 12  # one screen pixel is about 8 image pixels here
        page.keyboard.press("e")
        page.wait_for_function("document.querySelector('#status')?.innerText.includes('exported')", timeout=60_000)
        assert page.errors == []
        page.close()
    api = COCO(str(out / "camera.coco.json"))
    (ann,) = api.loadAnns(api.getAnnIds())
    mask = api.annToMask(ann).astype(bool)
    assert mask.shape == (4000, 6000) and mask.sum() > 1000


def _saved_mask(out, key, i=0):
    from pycocotools import mask as mask_utils

    rle = dict(saved(out, key)["objects"][i]["accepted_mask"])
    rle["counts"] = rle["counts"].encode()
    return mask_utils.decode(rle).astype(bool)


def test_the_vertex_tool_changes_only_what_was_dragged(browser, tmp_path):
    """Issue 30, item 10: a click on a vertex changes nothing; a drag changes one ring near one vertex; a
    double-click on an edge leaves a vertex that can be dragged."""
    folder, scenes = _scene_folder(tmp_path / "imgs", sizes=(256,))
    out = tmp_path / "ann"
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        page = open_page(browser, url)
        page.keyboard.press("3")
        ys, xs = np.nonzero(scenes[0].labels == 1)
        drag(page, (xs.min() - 3, ys.min() - 3), (xs.max() + 4, ys.max() + 4))
        page.keyboard.press("6")
        settle(page)
        rings = page.evaluate("() => window.samprompt.doc().polygons")
        rev, mask0 = saved(out, "scene0")["revision"], _saved_mask(out, "scene0")
        vx, vy = rings[0][0]
        click(page, vx, vy)  # a plain click on a vertex
        page.wait_for_timeout(300)
        assert saved(out, "scene0")["revision"] == rev and not saved(out, "scene0")["objects"][0]["edited"]
        assert page.evaluate("() => window.samprompt.doc().polygons") == rings
        drag(page, (vx, vy), (vx + 6, vy - 5), steps=4)
        after = page.evaluate("() => window.samprompt.doc().polygons")
        assert len(after) == len(rings) and after[1:] == rings[1:]  # the other rings as they were
        assert len(after[0]) == len(rings[0])  # not re-simplified
        changed = np.argwhere(_saved_mask(out, "scene0") != mask0)
        near = np.array([rings[0][-1], rings[0][0], [vx + 6, vy - 5], rings[0][1]])
        assert len(changed) and (changed[:, 1] >= near[:, 0].min() - 2).all() \
            and (changed[:, 1] <= near[:, 0].max() + 2).all() and (changed[:, 0] >= near[:, 1].min() - 2).all() \
            and (changed[:, 0] <= near[:, 1].max() + 2).all()  # only pixels next to the moved vertex
        ring = np.array(after[0])
        k = int(np.argmax(np.linalg.norm(np.roll(ring, -1, axis=0) - ring, axis=1)))  # the longest edge
        mid = (ring[k] + ring[(k + 1) % len(ring)]) / 2
        page.mouse.dblclick(*at(page, *mid))
        settle(page)
        grown = page.evaluate("() => window.samprompt.doc().polygons")
        assert len(grown[0]) == len(after[0]) + 1  # the new vertex is there to drag
        rev = saved(out, "scene0")["revision"]
        drag(page, tuple(mid), tuple(mid + [0, 8]), steps=4)
        assert saved(out, "scene0")["revision"] > rev
        assert page.errors == []
        page.close()


@pytest.mark.parametrize("answer", ["reload", "stay"])
def test_a_refused_second_tab_says_so_and_never_drops_its_objects(browser, tmp_path, answer):
    """Issue 30, item 7: the refused tab is asked (a dialog, where the user looks); either answer keeps its
    unsaved objects in a copy file, and moving on never discards them silently."""
    folder, scenes = _scene_folder(tmp_path / "imgs")
    out = tmp_path / "ann"
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        a = open_page(browser, url)
        b = open_page(browser, url)
        asked = []

        def on_dialog(d):
            asked.append(d.message)
            d.accept() if answer == "reload" else d.dismiss()

        b.on("dialog", on_dialog)
        click(a, *center_point(scenes[0].labels == 1))
        click(b, *center_point(scenes[0].labels == 2))  # refused: a saved first
        _until(lambda: asked)
        assert "another tab" in asked[0] and "copy" in asked[0]
        if answer == "reload":
            b.wait_for_function("window.samprompt.doc().objects.length === 1", timeout=30_000)
            settle(b)
            assert "kept in" in status(b)
        else:
            assert b.evaluate("() => window.samprompt.doc().objects.length") == 1  # still its own object
            b.keyboard.press("ArrowRight")  # moving on: kept, and said
            b.wait_for_function("window.samprompt.doc().file === 'scene1.png'", timeout=30_000)
            assert "kept in" in status(b)
        (copy,) = out.glob("scene0.copy-*.annotation.json")
        mine = json.loads(copy.read_text())["objects"]
        assert len(mine) == 1 and mine[0]["points"]  # b's click, not a's
        x2, y2 = center_point(scenes[0].labels == 2)
        assert abs(mine[0]["points"][0][0] - x2) < 1 and abs(mine[0]["points"][0][1] - y2) < 1
        assert len(saved(out, "scene0")["objects"]) == 1  # a's save untouched
        assert a.errors == [] and b.errors == []
        a.close()
        b.close()


def test_an_edit_made_while_the_server_is_away_is_shown_as_waiting_and_saved_when_it_is_back(browser, tmp_path):
    """Issue 30, item 11: the page says the server is away, keeps the edit, and after a restart sends it on the
    same file (not file 1)."""
    folder, scenes = _scene_folder(tmp_path / "imgs")
    out = tmp_path / "ann"
    port = _free_port()
    with serve(Annotator(Segmenter("tiny"), folder, out), port) as url:
        page = open_page(browser, url)
        page.keyboard.press("ArrowRight")
        page.wait_for_function("window.samprompt.doc().file === 'scene1.png'", timeout=30_000)
        settle(page)
    x, y = center_point(scenes[1].labels == 1)
    click_at = at(page, x, y)
    page.mouse.click(*click_at)  # the server is down
    page.wait_for_function("document.querySelector('#canvas .sp-away') && "
                           "!document.querySelector('#canvas .sp-away').hidden", timeout=30_000)
    assert "not answering" in page.inner_text("#canvas .sp-away")
    with serve(Annotator(Segmenter("tiny"), folder, out), port):  # back, on the same port
        # the page may be rebuilt or reloaded meanwhile (Gradio on a reconnect): every step is null-safe
        page.wait_for_function("window.samprompt && window.samprompt.doc && window.samprompt.doc() && "
                               "window.samprompt.doc().file === 'scene1.png'", timeout=60_000)  # the same file
        _until(lambda: (out / "scene1.annotation.json").exists(), 60)
        page.wait_for_function("window.samprompt && window.samprompt.pending && window.samprompt.pending() === 0",
                               timeout=60_000)
        assert page.evaluate("() => document.querySelector('#canvas .sp-away').hidden")
        (px, py), = saved(out, "scene1")["objects"][0]["points"]
        assert abs(px - x) < 1 and abs(py - y) < 1
        page.close()


def test_uploads_refused_files_leave_the_box_a_folder_file_opens_in_place_and_errors_name_the_file(browser,
                                                                                                     tmp_path):
    """Issue 30, item 16."""
    folder, _ = _scene_folder(tmp_path / "imgs")
    out = tmp_path / "ann"
    bad_nifti = tmp_path / "scan.nii.gz"
    bad_nifti.write_bytes(b"\x1f\x8b" + b"not a volume" * 10)
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        page = open_page(browser, url)
        page.set_input_files("#upload input[type=file]", str(bad_nifti))
        page.wait_for_function("document.querySelector('#status')?.innerText.includes('⚠')", timeout=60_000)
        said = status(page)
        assert "scan.nii.gz" in said and "/tmp" not in said.replace(str(tmp_path), "") and "gradio" not in said
        page.wait_for_function("!document.querySelector('#upload')?.innerText.includes('scan.nii.gz')",
                               timeout=30_000)  # the refused file does not sit in the box as if taken
        page.set_input_files("#upload input[type=file]", str(folder / "scene1.png"))  # a file of the folder
        page.wait_for_function("window.samprompt.doc() && window.samprompt.doc().file === 'scene1.png'",
                               timeout=60_000)
        settle(page)
        assert "in the folder" in status(page)
        on = page.inner_text("#canvas .sp-file.sp-on")
        assert "scene1.png" in on  # the list highlights the file that is open
        click(page, 40, 40)
        assert (out / "scene1.annotation.json").exists()  # saved as the folder's file, not as a copy
        assert not list(out.glob("scene1-*.annotation.json"))
        assert page.errors == []
        page.close()


def test_a_plane_change_cuts_through_the_selected_object(browser, tmp_path):
    """A plane change no longer resets to the middle slice: it passes through the selected object's centre."""
    folder = _small_ct(tmp_path)
    with serve(Annotator(Segmenter("tiny"), folder, tmp_path / "ann")) as url:
        page = open_page(browser, url)
        page.keyboard.press("3")
        drag(page, (5, 5), (20, 16))  # a small object near a corner of the middle axial slice
        page.select_option("#canvas .sp-plane", "coronal")
        page.wait_for_function("window.samprompt.drawn.key && window.samprompt.drawn.key.startsWith('ct4-y')",
                               timeout=30_000)
        y = int(page.evaluate("() => window.samprompt.drawn.key").split("-y")[1])
        assert y < 25, y  # through the object (rows 5-16 of the axial slice), not the middle (32)
        assert page.evaluate("() => window.samprompt.doc().polygons.length") > 0  # and it is in view, selected
        assert page.errors == []
        page.close()


def test_question_mark_shows_the_keys_and_escape_hides_them(browser, tmp_path):
    folder, _ = _scene_folder(tmp_path / "imgs", sizes=(128,))
    with serve(Annotator(Segmenter("tiny"), folder, tmp_path / "ann")) as url:
        page = open_page(browser, url)
        help_box = "#canvas .sp-help"
        assert page.is_hidden(help_box)
        page.keyboard.press("?")
        assert page.is_visible(help_box) and "Backspace" in page.inner_text(help_box)
        page.keyboard.press("Escape")
        assert page.is_hidden(help_box)
        assert page.errors == []
        page.close()


# ------------------------------------------------- issue 30: the "also met" list, by mouse and keys
def _pixel(page, x, y):
    """The canvas's RGBA at image point (x, y) as drawn now."""
    return page.evaluate("""([x, y]) => { const cv = document.querySelector('#canvas canvas'), r = cv.getBoundingClientRect();
        const p = window.samprompt.screenOf(x, y);
        return Array.from(cv.getContext('2d').getImageData(Math.round((p.x - r.left) * cv.width / r.width),
                          Math.round((p.y - r.top) * cv.height / r.height), 1, 1).data); }""", [float(x), float(y)])


def test_refusals_show_on_the_canvas_and_objects_can_be_shaded_hidden_locked_and_faded(browser, tmp_path):
    folder, scenes = _scene_folder(tmp_path / "imgs", sizes=(256,))
    out = tmp_path / "ann"
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        page = open_page(browser, url)
        page.keyboard.press("5")  # the eraser, with no object selected: refused, said on the canvas
        drag(page, (40, 40), (80, 80))
        page.wait_for_function("window.samprompt.notice().includes('select an object')", timeout=10_000)
        assert page.is_visible("#canvas .sp-notice")
        page.keyboard.press("1")
        a, b = (center_point(scenes[0].labels == k) for k in (1, 2))
        click(page, *a)  # the first click hides the notice and makes object 0
        assert page.is_hidden("#canvas .sp-notice")
        page.keyboard.press("n")
        click(page, *b)
        doc = page.evaluate("window.samprompt.doc()")
        assert [o["label"] for o in doc["objects"]] == ["object", "object"]
        assert doc["objects"][0]["colour"] != doc["objects"][1]["colour"]  # one class, two shades
        assert len({tuple(v) for v in doc["masks"]["palette"].values()}) == 2
        ai, bi = (a[0] + 4, a[1] + 1), (b[0] + 4, b[1] + 1)  # inside the objects, beside the points drawn
        plain = _pixel(page, *ai)
        page.keyboard.press("o")  # masks off: the picture itself
        off, off_b = _pixel(page, *ai), _pixel(page, *bi)
        page.keyboard.press("o")
        assert off != plain and _pixel(page, *ai) == plain
        page.keyboard.press("l")  # object 1 locked: a brush stroke on it is refused, its mask kept
        settle(page)
        assert "locked" in status(page)
        before = saved(out, "scene0")["objects"][1]["accepted_mask"]
        page.keyboard.press("4")
        drag(page, b, (b[0] + 30, b[1]))
        page.wait_for_function("window.samprompt.notice().includes('locked')", timeout=10_000)
        assert saved(out, "scene0")["objects"][1]["accepted_mask"] == before
        page.keyboard.press("h")  # hidden: not drawn, not picked, still saved
        settle(page)
        palette = page.evaluate("window.samprompt.doc()")["masks"]["palette"]
        assert "2" not in palette and saved(out, "scene0")["objects"][1]["hidden"] is True
        page.keyboard.press("f")  # redrawn: the hidden object's pixels show the picture (its outline aside)
        assert _pixel(page, *bi) == off_b
        page.keyboard.down("Shift")
        page.mouse.click(*at(page, *b))  # a shift-click on it selects what is under it, not it
        page.keyboard.up("Shift")
        settle(page)
        assert "object 1" not in status(page)
        assert page.errors == []
        page.close()


def test_a_polygon_drawn_by_clicks_enter_done_taken_back_and_keys_after_a_typed_class(browser, tmp_path):
    folder, _ = _scene_folder(tmp_path / "imgs", sizes=(256, 256))
    out = tmp_path / "ann"
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        page = open_page(browser, url)
        page.fill("#label input", "leaf")  # a class typed and entered: the keys go back to the canvas
        page.press("#label input", "Enter")
        page.wait_for_timeout(300)
        page.keyboard.press("6")
        assert page.evaluate("window.samprompt.view().tool") == "polygon"
        assert page.input_value("#label input") == "leaf"
        square = [(60, 60), (140, 60), (140, 140), (90, 150), (60, 140)]
        for p in square:
            page.mouse.click(*at(page, *p))
        page.keyboard.press("Backspace")  # takes the last vertex back, deletes nothing
        page.mouse.click(*at(page, 60, 60))  # a click on the first vertex closes it
        settle(page)
        obj = saved(out, "scene0")["objects"]
        assert len(obj) == 1 and obj[0]["label"] == "leaf" and obj[0]["edited"]
        from samprompt.masks import rle_to_mask

        mask = rle_to_mask(obj[0]["accepted_mask"])
        # the four vertices left: a quadrilateral of 5,600 px (shoelace), plus the outline's own pixels
        assert abs(int(mask.sum()) - 5600) < 300 and mask[100, 100] and not mask[140, 62]
        for p in [(170, 170), (220, 170), (200, 220)]:  # a second one, closed with Enter
            page.mouse.click(*at(page, *p))
        page.keyboard.press("Enter")
        settle(page)
        assert len(saved(out, "scene0")["objects"]) == 2 and not saved(out, "scene0")["done"]  # Enter closed it
        page.keyboard.press("Enter")  # done: the next file opens
        page.wait_for_function("window.samprompt.drawn.key === 'scene1'", timeout=30_000)
        assert saved(out, "scene0")["done"] is True
        page.keyboard.press("z")  # takes the done back, on the file it was
        page.wait_for_function("window.samprompt.drawn.key === 'scene0'", timeout=30_000)
        settle(page)
        assert saved(out, "scene0")["done"] is False and "not done" in status(page)
        assert len(saved(out, "scene0")["objects"]) == 2
        assert page.errors == []
        page.close()


def test_a_ct_is_shown_radiologically_by_default_and_the_volume_bar_fits(browser, tmp_path):
    folder = _small_ct(tmp_path)
    out = tmp_path / "ann"
    with serve(Annotator(Segmenter("tiny"), folder, out)) as url:
        page = open_page(browser, url)
        assert page.evaluate("document.scrollingElement.scrollHeight <= innerHeight")  # no page scroll at 1400 x 1000
        assert page.eval_on_selector("#canvas .sp-volume", "e => e.getBoundingClientRect().height") < 45  # one line
        edges = lambda: [page.inner_text(f"#canvas .sp-o-{e}") for e in "lrtb"]  # noqa: E731
        assert edges() == ["R", "L", "A", "P"]
        # a box drawn on the screen's left half lands on the patient's right: high x on the RAS grid
        r = page.eval_on_selector("#canvas canvas", "e => { const b = e.getBoundingClientRect(); "
                                                     "return [b.left, b.top, b.width, b.height]; }")
        page.keyboard.press("3")
        cx, cy = r[0] + r[2] / 2, r[1] + r[3] / 2
        page.mouse.move(cx - r[3] * 0.3, cy - r[3] * 0.1)
        page.mouse.down()
        page.mouse.move(cx - r[3] * 0.05, cy + r[3] * 0.1, steps=5)
        page.mouse.up()
        settle(page)
        box = page.evaluate("window.samprompt.doc()")["objects"][0]["box"]
        assert box[0] > 32 and box[2] <= 64  # the image's x (RAS: toward the patient's right) is the upper half
        page.select_option("#canvas .sp-convention", "neurological")
        assert edges() == ["L", "R", "A", "P"]
        sx = page.evaluate("window.samprompt.screenOf(48, 32).x")
        assert sx > cx  # the patient's right now on the screen's right
        page.reload()  # the choice is kept by the browser
        page.wait_for_function("window.samprompt && window.samprompt.drawn.key", timeout=60_000)
        assert page.eval_on_selector("#canvas .sp-convention", "e => e.value") == "neurological"
        assert page.errors == []
        page.close()


def test_a_team_member_signs_in_and_her_objects_carry_her_name(browser, tmp_path):
    """Issue 28, first step: with --users the page asks for a name and password first; a wrong password is
    refused; once signed in, the objects she makes record her name."""
    from samprompt.annotate.users import User, hash_password, write_users
    from samprompt.annotate.app import auth_check

    users = {"ana": User("ana", "annotator", hash_password("correct horse"))}
    write_users(tmp_path / "users.toml", users)
    folder, scenes = _scene_folder(tmp_path / "imgs", sizes=(256,))
    out = tmp_path / "ann"
    app = build_app(Annotator(Segmenter("tiny"), folder, out))
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
               auth=auth_check(users))
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=60_000)
        page.get_by_label("username").fill("ana")
        page.get_by_label("password").fill("wrong password")
        page.keyboard.press("Enter")
        page.wait_for_timeout(1500)
        assert page.evaluate("!(window.samprompt && window.samprompt.drawn)")  # still outside
        assert "incorrect" in page.inner_text("body").lower()
        page.get_by_label("username").fill("ana")
        page.get_by_label("password").fill("correct horse")
        page.keyboard.press("Enter")
        page.wait_for_function("window.samprompt && window.samprompt.drawn && window.samprompt.drawn.key",
                               timeout=60_000)
        click(page, *center_point(scenes[0].labels == 1))
        (obj,) = saved(out, "scene0")["objects"]
        assert obj["created_by"] == "ana" == obj["edited_by"]
        page.close()
    finally:
        app.close()


def test_a_video_frame_box_propagate_keys_and_export(browser, tmp_path):
    from samprompt.synthetic.videos import make_video, write_video

    v = make_video(0)
    write_video(tmp_path / "clips" / "walk.avi", v.frames)
    out = tmp_path / "ann"
    truth = v.truth[1]
    ys, xs = np.nonzero(truth[5])
    with serve(Annotator(Segmenter("tiny"), tmp_path / "clips", out)) as url:
        page = open_page(browser, url)
        assert "opened video walk.avi" in status(page)
        panel = page.inner_text("#canvas .sp-volume")
        assert "frame" in panel and "0 / 11" in panel
        assert not page.is_visible("#canvas .sp-window") and not page.is_visible("#canvas .sp-convention")
        box_propagate_and_step_up(page, "walk-f", 5, (xs.min(), ys.min()), (xs.max() + 1, ys.max() + 1))
        assert page.evaluate("() => window.samprompt.doc().polygons.length") > 0  # followed onto frame 7
        assert "object on frames" in page.inner_text("#canvas .sp-volume")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "annotator_video.png"))
        page.keyboard.press("e")
        page.wait_for_function("document.querySelector('#status').innerText.includes('exported')", timeout=60_000)
        assert page.errors == []
        page.close()
    doc = json.loads((out / "walk.coco.json").read_text())
    assert {im["frame_id"] for im in doc["images"]} >= {5, 7} and doc["videos"][0]["name"] == "walk.avi"
