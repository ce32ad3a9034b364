"""The samprompt annotator: interactive SAM prompting in the browser (Gradio).

    samprompt annotate [FOLDER] [--model tiny] [--host 127.0.0.1] [--port 7860] [--out DIR]

Click the image to add positive or negative points, or two clicks in box mode
for a box; the mask updates from the cached image embedding. Several objects
per image, each with a class label; undo/redo; "segment everything" proposals
to accept or discard; export COCO / PNG / YOLO-seg plus the prompts. With a
FOLDER, saved annotations in the output folder are resumed on reopening.

Each browser tab has its own state (``gr.State``); the model and its
content-keyed embedding cache are shared. Edits run one at a time in arrival
order (one Gradio concurrency group), so a click followed at once by ``z`` undoes
that click. The class list is the folder's (``OUT/classes.json``), the same in
every tab and after a restart. Each image saves under a unique key: its stem,
or its path with a hash where two names of the folder clean up alike; an upload
under its stem and a hash of its content.
"""


import argparse
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .annotation import AnnotatedObject, ImageAnnotation, StaleSaveError, read_saved, safe_name
from .errors import ImageError, SampromptError
from .io import atomic_write_text
from .images import IMAGE_SUFFIXES, list_images, to_rgb_uint8
from .masks import overlay
from .segmenter import Segmenter

MODES = ("positive point", "negative point", "box (two clicks)")

# Keyboard shortcuts: a key clicks the button with that element id (ignored while typing in a field).
SHORTCUTS = {"n": "new", "z": "undo", "y": "redo", "e": "export", "a": "accept", "d": "discard",
             "ArrowRight": "next", "ArrowLeft": "prev"}
MODE_KEYS = {"1": 0, "2": 1, "3": 2}
# Every event that reads or edits annotations runs in one queue, one at a time, in arrival order.
EDITS = {"concurrency_id": "edits", "concurrency_limit": 1}
_SHORTCUT_JS = """
<script>
document.addEventListener('keydown', (ev) => {
  const t = ev.target;
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
  const buttons = %s;
  const modes = %s;
  if (ev.key in buttons) {
    const b = document.getElementById(buttons[ev.key]);
    if (b) { b.click(); ev.preventDefault(); }
  } else if (ev.key in modes) {
    const r = document.querySelectorAll('#mode input[type=radio]')[modes[ev.key]];
    if (r) { r.click(); ev.preventDefault(); }
  }
});
</script>
"""


@dataclass
class SessionState:
    """What one browser tab holds."""

    ann: ImageAnnotation | None = None
    index: int = 0
    box_start: tuple[float, float] | None = None
    proposal: int = 0


def folder_keys(images: list[Path], folder: Path) -> dict[Path, str]:
    """A unique save key per image: its cleaned stem, or, where two images clean up to the same
    stem (``x y.png`` and ``x_y.png``, ``a.png`` and ``a.jpg``), the cleaned relative path and a hash of it."""
    rel = {p: p.relative_to(folder).as_posix() if p.is_relative_to(folder) else p.name for p in images}
    plain = {p: safe_name(Path(r).stem) for p, r in rel.items()}
    counts = Counter(plain.values())
    return {p: plain[p] if counts[plain[p]] == 1 else
            f"{safe_name(rel[p])}-{hashlib.sha1(rel[p].encode()).hexdigest()[:8]}" for p in images}


def image_size_from_header(path: str | Path) -> tuple[int, int] | None:
    """(W, H) from the file's header, without decoding the pixels; None when the header cannot be read."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, before any decoding
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:
        return None


class Annotator:
    """The app's logic, UI-free so it can be tested directly and through Gradio."""

    def __init__(self, segmenter: Segmenter, folder: str | Path | None = None, out: str | Path | None = None,
                 max_side: int = 4096, imports: str | Path | None = None) -> None:
        from .label_import import open_labels

        self.seg = segmenter
        self.imports = open_labels(imports) if imports else None  # existing labels, for images not yet saved
        self.folder = Path(folder) if folder else None
        self.images: list[Path] = []
        if self.folder is not None:
            self.images = list_images(self.folder)
        self.out = Path(out) if out else (self.folder / "annotations" if self.folder else Path("annotations"))
        self.keys = folder_keys(self.images, self.folder) if self.folder is not None else {}
        self.max_side = max_side
        self.prefetched = None  # the background thread encoding the next image, if any
        self.classes = self._read_classes()

    # ---------------------------------------------------------------- classes
    @property
    def classes_file(self) -> Path:
        return self.out / "classes.json"

    def _read_classes(self) -> list[str]:
        try:
            names = json.loads(self.classes_file.read_text())
        except (OSError, ValueError):
            names = None
        if not isinstance(names, list):
            return ["object"]
        return [str(n) for n in names if str(n).strip()] or ["object"]

    def set_classes(self, names: list[str]) -> list[str]:
        """Replace the folder's class list (order = class ids); classes in use are kept, at the end."""
        keep = list(dict.fromkeys(n.strip() for n in names if n.strip())) or ["object"]
        self.classes = list(dict.fromkeys([*keep, *[c for c in self.classes if c not in keep and self._in_use(c)]]))
        self._write_classes()
        return self.classes

    def add_class(self, name: str) -> None:
        if name and name not in self.classes:
            self.classes.append(name)
            self._write_classes()

    def _in_use(self, name: str) -> bool:
        for path in self.out.glob("*.annotation.json"):
            try:
                if any(o.get("label") == name for o in json.loads(path.read_text()).get("objects", [])):
                    return True
            except (OSError, ValueError):
                continue
        return False

    def _write_classes(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.classes_file, json.dumps(self.classes, indent=1) + "\n")

    # ---------------------------------------------------------------- images
    def _read(self, path: str | Path, shown: str) -> np.ndarray:
        """Decode an image after checking its size from the header; errors name it as ``shown``."""
        size = image_size_from_header(path)
        if size is not None and max(size) > self.max_side:
            raise SampromptError(f"{shown} is {size[0]}x{size[1]}; the limit is {self.max_side} px a side")
        try:
            return to_rgb_uint8(path)
        except ImageError:
            raise SampromptError(f"cannot decode {shown} (corrupt or unsupported format)") from None

    def _open(self, state: SessionState, image: np.ndarray, name: str, key: str, source: str = "folder") -> str:
        rgb = to_rgb_uint8(image)
        if max(rgb.shape[:2]) > self.max_side:
            raise SampromptError(f"image is {rgb.shape[1]}x{rgb.shape[0]}; the limit is {self.max_side} px a side")
        ann = ImageAnnotation(self.seg, rgb, name, key=key)
        ann.source = source
        resumed = ann.load(self.out)
        imported = 0
        if not resumed and self.imports is not None:
            for label, mask in self.imports.objects(ann.file_name, ann.size):
                ann.objects.append(AnnotatedObject(label=label, mask=mask))
                self.add_class(label)
                imported += 1
            ann.current = len(ann.objects) - 1 if ann.objects else None
        state.ann = ann
        state.box_start, state.proposal = None, 0
        self.seg.embed(rgb)  # encode once, now, so clicks are instant
        note = f" (resumed {len(ann.objects)} objects)" if resumed else f" (imported {imported} objects)" if imported else ""
        return f"opened {ann.file_name}" + note

    def open_upload(self, state: SessionState, path: str | None) -> str:
        if not path:
            raise SampromptError("no file uploaded")
        name = Path(path).name
        image = self._read(path, name)
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
        return self._open(state, image, name, f"{safe_name(Path(name).stem)}-{digest}", source="upload")

    def open_index(self, state: SessionState, index: int) -> str:
        if not self.images:
            raise SampromptError("no folder of images was given; upload an image instead")
        if state.ann is not None and state.ann.objects:
            try:
                state.ann.save(self.out)  # never lose work when stepping away
            except StaleSaveError:
                pass  # another tab saved this image; this tab was told at its edit, and reopening shows theirs
        state.index = int(np.clip(index, 0, len(self.images) - 1))
        path = self.images[state.index]
        rel = path.relative_to(self.folder).as_posix() if self.folder and path.is_relative_to(self.folder) else path.name
        message = self._open(state, self._read(path, path.name), rel, self.keys[path])
        if state.index + 1 < len(self.images):  # encode the next image while the user works on this one
            self.prefetched = self.seg.prefetch(self.images[state.index + 1])
        return message

    def progress(self, state: SessionState) -> str:
        if not self.images:
            return "upload an image to start"
        done = sum((self.out / f"{self.keys[p]}.annotation.json").exists() for p in self.images)
        return f"image {state.index + 1} / {len(self.images)} ({done} with saved annotations)"

    # ---------------------------------------------------------------- clicks
    def click(self, state: SessionState, x: float, y: float, mode: str, label: str) -> str:
        ann = self._need(state)
        if mode == MODES[2]:
            if state.box_start is None:
                state.box_start = (x, y)
                return "box: click the opposite corner"
            (x0, y0), state.box_start = state.box_start, None
            box = (min(x0, x), min(y0, y), max(x0, x), max(y0, y))
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                raise SampromptError("box too small: click two different corners")
            ann.set_box(box, label=label)
        else:
            ann.add_point(x, y, positive=mode == MODES[0], label=label)
        obj = ann.objects[ann.current]  # type: ignore[index]
        return f"object {ann.current}: {obj.label}, score {obj.score:.3f}" if obj.score is not None else "ok"

    def _need(self, state: SessionState) -> ImageAnnotation:
        if state.ann is None:
            raise SampromptError("open an image first")
        return state.ann

    # ---------------------------------------------------------------- render
    def render(self, state: SessionState) -> np.ndarray | None:
        if state.ann is None:
            return None
        ann = state.ann
        masks = [o.mask if o.mask is not None else np.zeros(ann.size, bool) for o in ann.objects]
        pts = [(np.array(o.points).reshape(-1, 2), np.array(o.point_labels)) for o in ann.objects]
        boxes = [np.array(o.box) if o.box else None for o in ann.objects]
        stack = np.stack(masks) if masks else np.zeros((0, *ann.size), bool)
        pic = overlay(ann.image, stack, points=pts, boxes=boxes)
        if ann.proposals and state.proposal < len(ann.proposals):
            pic = overlay(pic, ann.proposals[state.proposal][None], alpha=0.35)
        return pic

    def autosave(self, state: SessionState) -> None:
        """Save after every edit, so a server restart loses nothing the user did."""
        ann = state.ann
        if ann is not None and (ann.objects or (self.out / f"{ann.name}.annotation.json").exists()):
            ann.save(self.out)

    def object_choices(self, state: SessionState) -> list[str]:
        if state.ann is None:
            return []
        return [f"{i}: {o.label}" for i, o in enumerate(state.ann.objects)]

    def export(self, state: SessionState) -> list[str]:
        ann = self._need(state)
        for o in ann.objects:
            self.add_class(o.label)
        paths = ann.export(self.out, categories=self.classes)
        if "labels" in {p.parent.name for p in paths}:
            paths += self._yolo_dataset_files()
        return [str(p) for p in paths]

    def _yolo_dataset_files(self) -> list[Path]:
        """``classes.txt`` (one name a line, id = line) and a ``data.yaml`` naming the same ids."""
        names = "\n".join(f"  {i}: {json.dumps(n)}" for i, n in enumerate(self.classes))
        return [atomic_write_text(self.out / "classes.txt", "\n".join(self.classes) + "\n"),
                atomic_write_text(self.out / "data.yaml", f"path: .\ntrain: images\nval: images\nnames:\n{names}\n")]

    def export_all(self, state: SessionState) -> str:
        """COCO for every saved annotation of the folder's images in one file (uploads are not part of it)."""
        from .export import CocoWriter

        coco = CocoWriter(self.classes)
        for path in self.images:
            saved = self.out / f"{self.keys[path]}.annotation.json"
            if not saved.exists():
                continue
            _, (h, w), objects = read_saved(saved)
            objs = [o for o in objects if o.mask is not None]
            for o in objs:
                self.add_class(o.label)
            masks = np.stack([o.mask for o in objs]) if objs else np.zeros((0, h, w), bool)
            rel = path.relative_to(self.folder).as_posix() if self.folder and path.is_relative_to(self.folder) \
                else path.name
            coco.add_image(rel, masks, labels=[o.label for o in objs], height=h, width=w)
        return str(coco.write(self.out / "coco_all.json"))


def build_app(annotator: Annotator):
    """The Gradio Blocks UI over an :class:`Annotator`."""
    import gradio as gr

    def guard(fn):
        """Run an action; a SampromptError becomes a status message, the app keeps working."""

        def wrapped(state, *args):
            try:
                msg = fn(state, *args)
                annotator.autosave(state)
            except (SampromptError, IndexError, ValueError) as exc:
                msg = f"⚠️ {exc}"
            choices = annotator.object_choices(state)
            current = choices[state.ann.current] if state.ann is not None and state.ann.current is not None and choices else None
            return (state, annotator.render(state), msg or "", gr.update(choices=choices, value=current),
                    annotator.progress(state))

        return wrapped

    with gr.Blocks(title="samprompt annotator") as app:
        state = gr.State(lambda: SessionState())  # a factory: one state per browser tab
        gr.Markdown("## samprompt annotator\nClick to prompt SAM; masks update from the cached embedding. "
                    "Keys: 1/2/3 positive/negative/box, n new object, z undo, y redo, a/d accept/discard "
                    "a proposal, e export, ←/→ previous/next image.")
        with gr.Row():
            with gr.Column(scale=3):
                canvas = gr.Image(label="image", type="numpy", interactive=False, format="png", elem_id="canvas")
                status = gr.Markdown(elem_id="status")
            with gr.Column(scale=1):
                upload = gr.File(label="upload an image", file_types=list(IMAGE_SUFFIXES), elem_id="upload")
                with gr.Row():
                    prev_b = gr.Button("◀ previous", elem_id="prev")
                    next_b = gr.Button("next ▶", elem_id="next")
                progress = gr.Markdown(annotator.progress(SessionState()))
                mode = gr.Radio(list(MODES), value=MODES[0], label="click adds", elem_id="mode")
                classes = gr.Textbox(", ".join(annotator.classes), label="classes of this folder (comma-separated)",
                                     elem_id="classes")
                label = gr.Dropdown(annotator.classes, value=annotator.classes[0], allow_custom_value=True,
                                    label="class", elem_id="label")
                objects = gr.Dropdown([], label="objects", elem_id="objects")
                with gr.Row():
                    new_b = gr.Button("new object", elem_id="new")
                    rename_b = gr.Button("rename", elem_id="rename")
                    delete_b = gr.Button("delete", elem_id="delete")
                with gr.Row():
                    undo_b = gr.Button("undo", elem_id="undo")
                    redo_b = gr.Button("redo", elem_id="redo")
                    clear_b = gr.Button("clear", elem_id="clear")
                with gr.Row():
                    propose_b = gr.Button("segment everything", elem_id="propose")
                    accept_b = gr.Button("accept", elem_id="accept")
                    discard_b = gr.Button("discard", elem_id="discard")
                export_b = gr.Button("export image", variant="primary", elem_id="export")
                export_all_b = gr.Button("export folder (COCO)", elem_id="export_all")
                files = gr.File(label="exported files", file_count="multiple", elem_id="files")

        outs = [state, canvas, status, objects, progress]

        guarded_click = guard(lambda st, x, y, mode_v, label_v: annotator.click(st, x, y, mode_v, label_v or "object"))

        def on_select(st, mode_v, label_v, evt: gr.SelectData):  # the annotation makes Gradio pass the click
            x, y = evt.index
            return guarded_click(st, float(x), float(y), mode_v, label_v)

        def idx(o):
            return int(o.split(":")[0]) if o else -1

        canvas.select(on_select, [state, mode, label], outs, **EDITS, api_name=False)
        # The same action without a browser: "x,y" text (used by scripts and gradio_client).
        xy = gr.Textbox(visible=False)
        xy_b = gr.Button(visible=False)

        def on_xy(st, text, mode_v, label_v):
            try:
                x, y = (float(v) for v in str(text).split(","))
            except ValueError:
                raise SampromptError(f"expected 'x,y' in pixels, got {text!r}") from None
            return annotator.click(st, x, y, mode_v, label_v or "object")

        xy_b.click(guard(on_xy), [state, xy, mode, label], outs, **EDITS, api_name="click")
        upload.upload(guard(lambda st, f: annotator.open_upload(st, f)), [state, upload], outs, **EDITS, api_name="upload")
        prev_b.click(guard(lambda st: annotator.open_index(st, st.index - 1)), [state], outs, **EDITS, api_name="previous")
        next_b.click(guard(lambda st: annotator.open_index(st, st.index + 1 if st.ann else 0)), [state], outs,
                     **EDITS, api_name="next")
        new_b.click(guard(lambda st, lab: f"object {annotator._need(st).new_object(lab or 'object')}"), [state, label], outs,
                    **EDITS, api_name="new_object")
        objects.input(guard(lambda st, o: annotator._need(st).select(idx(o))), [state, objects], outs, **EDITS, api_name="select")
        rename_b.click(guard(lambda st, o, lab: annotator._need(st).rename(idx(o), lab)), [state, objects, label], outs,
                       **EDITS, api_name="rename")
        delete_b.click(guard(lambda st, o: annotator._need(st).delete(idx(o))), [state, objects], outs, **EDITS, api_name="delete")
        undo_b.click(guard(lambda st: "undone" if annotator._need(st).undo() else "nothing to undo"), [state], outs,
                     **EDITS, api_name="undo")
        redo_b.click(guard(lambda st: "redone" if annotator._need(st).redo() else "nothing to redo"), [state], outs,
                     **EDITS, api_name="redo")
        clear_b.click(guard(lambda st: annotator._need(st).clear()), [state], outs, **EDITS, api_name="clear")

        def propose(st):
            n = len(annotator._need(st).propose())
            st.proposal = 0
            return f"{n} proposals: accept or discard the highlighted one"

        def accept(st, lab):
            ann = annotator._need(st)
            if not ann.proposals:
                return "no proposals left"
            ann.accept(0, lab or "object")
            return f"accepted; {len(ann.proposals)} left"

        def discard(st):
            ann = annotator._need(st)
            if not ann.proposals:
                return "no proposals left"
            ann.discard(0)
            return f"discarded; {len(ann.proposals)} left"

        def set_classes(st, text, current):
            names = annotator.set_classes(str(text).split(","))
            value = current if current in names else names[0]
            return st, gr.update(choices=names, value=value)

        classes.change(set_classes, [state, classes, label], [state, label], **EDITS, api_name="classes")
        propose_b.click(guard(propose), [state], outs, **EDITS, api_name="propose")
        accept_b.click(guard(accept), [state, label], outs, **EDITS, api_name="accept")
        discard_b.click(guard(discard), [state], outs, **EDITS, api_name="discard")

        def export(st, lab):
            annotator.add_class(lab)
            return annotator.export(st)

        def wrap_export(st, lab):
            try:
                paths = export(st, lab)
                return paths, f"exported {len(paths)} files to {annotator.out}"
            except SampromptError as exc:
                return None, f"⚠️ {exc}"

        export_b.click(wrap_export, [state, label], [files, status], **EDITS, api_name="export")
        export_all_b.click(lambda st: ([annotator.export_all(st)], "exported the folder"), [state], [files, status],
                           **EDITS, api_name="export_all")
        if annotator.images:
            app.load(guard(lambda st: annotator.open_index(st, 0)), [state], outs, **EDITS)
    return app


def shortcut_js() -> str:
    """The ``<script>`` for ``launch(head=...)`` that maps keys to the annotator's buttons."""
    import json

    return _SHORTCUT_JS % (json.dumps(SHORTCUTS), json.dumps(MODE_KEYS))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="samprompt annotate", description="Interactive SAM annotation in the browser.")
    p.add_argument("folder", nargs="?", help="folder of images (or a labelled folder's images/)")
    p.add_argument("--model", default="tiny", help="registry name or checkpoint path (default: tiny)")
    p.add_argument("--out", help="where annotations go (default: FOLDER/annotations)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-upload-mb", type=float, default=25)
    p.add_argument("--import", dest="imports", metavar="PATH",
                   help="start images that have no saved annotation from existing labels: a folder of label-map "
                        "PNGs (or one holding masks/), a COCO JSON file, or a folder of YOLO-seg .txt files")
    args = p.parse_args(argv)
    try:
        annotator = Annotator(Segmenter(args.model), args.folder, args.out, imports=args.imports)
    except SampromptError as exc:
        p.error(str(exc))
    build_app(annotator).launch(server_name=args.host, server_port=args.port,
                                max_file_size=f"{args.max_upload_mb}mb", show_error=True, head=shortcut_js())


if __name__ == "__main__":
    main()
