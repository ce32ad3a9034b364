"""The annotator's state and actions, without the UI: a tab's :class:`SessionState` and the
:class:`Annotator` every tab shares (the model, the folder, the class list, saves and exports).
:mod:`samprompt.annotate.app` puts the Gradio page over it; tests and scripts drive it directly.
"""



import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ImageError, SampromptError
from ..images import IMAGE_SUFFIXES, list_images, to_rgb_uint8
from ..io import atomic_write_text
from ..masks import overlay
from ..outputs import check_out_folder, check_outputs, record_written, written_by_samprompt
from ..segmenter import Segmenter
from .document import WHO, AnnotatedObject, EditsWouldBeLost, ImageAnnotation, StaleSaveError, read_saved, safe_name
from .review import ReviewLedger, file_state, write_status

if TYPE_CHECKING:
    from .volume import VolumeAnnotation

MODES = ("positive point", "negative point", "box (two clicks)")
# Every button event that reads or edits annotations runs in one queue, one at a time, in arrival order.
EDITS = {"concurrency_id": "edits", "concurrency_limit": 1, "show_progress": "hidden"}
KEYS = ("new", "undo", "redo", "accept", "discard", "delete", "propose", "next", "prev", "done", "clear", "hide",
        "lock")
# Segment everything with the built-in model: samprompt geo's thresholds (docs/geo.md), 16 points a side
TINY_PROPOSALS = {"points_per_side": 16, "pred_iou_thresh": 0.6, "stability_score_thresh": 0.8}


@dataclass
class SessionState:
    """What one browser tab holds."""

    ann: ImageAnnotation | None = None
    volume: "VolumeAnnotation | None" = None
    index: int = 0
    box_start: tuple[float, float] | None = None
    proposal: int = 0
    ack: int = 0  # the last canvas command applied
    seq: int = 0  # canvas documents sent
    shown: tuple | None = None  # the picture the browser has
    confirm: dict | None = None  # a question for the browser (hand edits about to be replaced)
    kept: str = ""  # where unsaved objects were kept, to say in the next status line
    auto_advance: bool = True
    files_seen: int = -1  # the version of the file list this tab has
    side: tuple | None = None  # what the side panel shows (objects, progress), to skip unchanged updates
    notice: str = ""  # a refusal to show on the canvas with the next document
    user: str | None = None  # the signed-in name (annotate --users), else None
    after_done: tuple[int, str] | None = None  # (the file marked done, the file then opened): what undo can take back
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __deepcopy__(self, memo) -> "SessionState":  # Gradio copies a new tab's state from the default one
        return replace(self, lock=threading.Lock())


def _stem(path: Path) -> str:
    """NAME of ``NAME.png``, of a volume ``NAME.nii.gz`` and of a DICOM series folder ``NAME/``."""
    from ..domains.medical.volume import is_nifti, volume_name

    return volume_name(path) if is_nifti(path) or path.is_dir() else path.stem


def folder_keys(images: list[Path], folder: Path) -> dict[Path, str]:
    """A unique save key per image: its cleaned stem, or, where two images clean up to the same
    stem (``x y.png`` and ``x_y.png``, ``a.png`` and ``a.jpg``), the cleaned relative path and a hash of it."""
    rel = {p: p.relative_to(folder).as_posix() if p.is_relative_to(folder) else p.name for p in images}
    plain = {p: safe_name(_stem(p)) for p in images}
    counts = Counter(plain.values())
    return {p: plain[p] if counts[plain[p]] == 1 else
            f"{safe_name(rel[p])}-{hashlib.sha1(rel[p].encode()).hexdigest()[:8]}" for p in images}


def list_volumes(folder: Path) -> list[Path]:
    """NIfTI files and videos beside the images of ``folder`` (or of its ``images/``), its subfolders of video
    frames, and the folder of every DICOM series in its subfolders at any depth (a patient/study/series tree)
    that holds that series alone."""
    from ..domains.medical.volume import is_nifti

    from .video import VIDEO_SUFFIXES, is_video

    sub = folder / "images" if (folder / "images").is_dir() else folder
    found = [p for p in sub.iterdir() if p.is_file() and (is_nifti(p) or p.suffix.lower() in VIDEO_SUFFIXES)]
    dirs = [p for p in sub.iterdir() if p.is_dir() and p.name != "annotations"]
    found += [d for d in dirs if is_video(d)]  # a folder of frames
    dirs = [d for d in dirs if d not in found]
    if dirs:
        from collections import Counter

        from ..domains.medical.dicom import discover

        for d in dirs:
            try:
                series = discover(d).series
            except Exception:  # an unreadable folder is left out, as a non-image file is
                continue
            per_folder = Counter(s.folder for s in series)
            found += [Path(f) for f, n in per_folder.items()
                      if n == 1 and not Path(f).is_relative_to(folder / "annotations")]
    return sorted(set(found))


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
                 max_pixels: int = 60_000_000, imports: str | Path | None = None, labels: str | Path | None = None) -> None:
        from .formats import open_labels

        self.seg = segmenter
        self.imports = open_labels(imports) if imports else None  # existing labels, for images not yet saved
        self.folder = Path(folder) if folder else None
        self.images: list[Path] = []
        self.volumes: list[Path] = []
        if self.folder is not None:
            self.images = list_images(self.folder)
            if self.folder.is_dir():
                self.volumes = list_volumes(self.folder)
                if not self.images and not self.volumes:
                    raise SampromptError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) and no volumes (.nii, "
                                         f".nii.gz, DICOM series folders) in {self.folder}")
            else:
                self.folder = self.folder.parent  # one file: its folder holds the annotations
        self.entries = self.images + self.volumes  # what the file list shows, images first
        self.out = Path(out) if out else (self.folder / "annotations" if self.folder else Path("annotations"))
        check_out_folder(self.out)
        inputs = {p.parent.resolve() for p in self.entries}
        if self.out.resolve() in inputs:  # exports are NAME.png: they would write over the images
            raise SampromptError(f"--out {self.out} is the folder of the images; exports would overwrite them. "
                                 f"Choose another folder (the default is {self.folder / 'annotations'})")
        self.keys = folder_keys(self.entries, self.folder) if self.folder is not None else {}
        self.max_pixels = max_pixels
        self.prefetched = None  # the background thread encoding the next image, if any
        self.classes = self._read_classes()
        self.label_values: dict[str, int] = {}  # a labels file's class -> value, for volume exports
        if labels is not None:
            from ..domains.medical.labels import read_labels

            self.label_values = {v["name"]: k for k, v in sorted(read_labels(labels).items())}
            for name in self.label_values:
                self.add_class(name)
        self._status: dict[str, str] | None = None
        self.ledger = ReviewLedger(self.out)  # done marks and reviewers' verdicts (review.py)
        self.roles: dict[str, str] = {}  # user -> role when the annotator signs users in (annotate --users)
        self.assign = 0  # annotate --assign N: files are handed to each signed-in user N at a time (0: not)
        self.assignments: dict[str, str] = self._read_assignments()  # file key -> user, kept in assignment.json
        self._assign_lock = threading.Lock()
        self.broken: dict[Path, str] = {}  # files that could not be opened, with the reason
        self._last_opened: str | None = None
        self._files_version = 0  # bumped when a file's status changes: the list is resent only then

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

    def set_classes(self, names: list[str]) -> tuple[list[str], str]:
        """Add the new names to the folder's class list; returns the list and a note for the user.

        The list is append-only for the life of a folder: a class's place is its YOLO id and its
        colour, so a list that leaves out or reorders existing classes (typed in a stale box, say)
        adds its new names at the end and changes nothing else.
        """
        wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
        new = [n for n in wanted if n not in self.classes]
        dropped = any(c not in wanted for c in self.classes)
        reordered = [w for w in wanted if w in self.classes] != [c for c in self.classes if c in wanted]
        if new:
            self.classes = [*self.classes, *new]
            self._write_classes()
        note = f"added {', '.join(new)}" if new else "no new class"
        if dropped or reordered:
            note += ("; the other classes were kept in their places (a class's place is its YOLO id and colour "
                     "for the life of this folder)")
        return self.classes, note

    def add_class(self, name: str) -> None:
        if name and name not in self.classes:
            self.classes.append(name)
            self._write_classes()

    def _write_classes(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.classes_file, json.dumps(self.classes, indent=1) + "\n")

    # ---------------------------------------------------------------- status
    def _saved_file(self, path: Path) -> Path:
        kind = "volume" if path in self.volumes else "annotation"
        return self.out / f"{self.keys[path]}.{kind}.json"

    def status(self) -> dict[str, str]:
        """Per entry key: ``done`` (marked finished), ``saved`` (has saved objects) or ``""``."""
        if self._status is None:
            self._status = {}
            for path in self.entries:
                f = self._saved_file(path)
                try:
                    self._status[self.keys[path]] = "done" if json.loads(f.read_text()).get("done") else "saved"
                except (OSError, ValueError, AttributeError):
                    self._status[self.keys[path]] = ""
        return self._status

    def states(self) -> dict[str, str]:
        """Per entry key, the review state: ``new``, ``in progress``, ``done``, ``accepted`` or ``rejected``."""
        return {k: file_state(v, self.ledger.get(k)) for k, v in self.status().items()}

    def write_status(self) -> Path:
        """``OUT/status.json``: every file's state and the counts per state and per user (review.py)."""
        return write_status(self.out, self.states(), self.ledger, self.assignments)

    # ------------------------------------------------------------ assignment
    @property
    def _assignment_file(self) -> Path:
        return self.out / "assignment.json"

    def _read_assignments(self) -> dict[str, str]:
        try:
            return dict(json.loads(self._assignment_file.read_text()).get("files", {}))
        except (OSError, ValueError, AttributeError, TypeError):
            return {}

    def queue(self, user: str | None) -> list[int]:
        """With ``assign``: the entries of ``user``'s unfinished files (rejected ones first). One who has none
        is handed the next ``assign`` files nobody has, in folder order; the hand-out is kept in
        ``OUT/assignment.json``, so it is stable across tabs and restarts. Without: []."""
        if not self.assign or not user:
            return []
        with self._assign_lock:
            states = self.states()

            def unfinished(k: int) -> bool:
                return (states.get(self.keys[self.entries[k]]) in ("new", "in progress", "rejected")
                        and self.entries[k] not in self.broken)

            mine = [k for k, p in enumerate(self.entries) if self.assignments.get(self.keys[p]) == user and unfinished(k)]
            if not mine:
                mine = [k for k, p in enumerate(self.entries) if self.keys[p] not in self.assignments
                        and unfinished(k)][: self.assign]
                if mine:
                    self.assignments.update({self.keys[self.entries[k]]: user for k in mine})
                    atomic_write_text(self._assignment_file, json.dumps(
                        {"batch": self.assign, "files": self.assignments}, indent=1, sort_keys=True) + "\n")
                    self._files_version += 1
            return sorted(mine, key=lambda k: (states.get(self.keys[self.entries[k]]) != "rejected", k))

    def files(self) -> list[dict]:
        """The folder's images and volumes with their status (``broken``: cannot be opened; else ``""``,
        ``saved``, ``done``, ``accepted`` or ``rejected``), for the file list."""
        status = self.status()
        shown = {k: (v if v != "done" else file_state(v, self.ledger.get(k))) for k, v in status.items()}
        return [{"name": (p.relative_to(self.folder).as_posix() if self.folder and p.is_relative_to(self.folder)
                          else p.name), "status": "broken" if p in self.broken else shown.get(self.keys[p], ""),
                 "volume": p in self.volumes, **({"why": self.broken[p]} if p in self.broken else {}),
                 **({"assigned": self.assignments[self.keys[p]]} if self.keys[p] in self.assignments else {})}
                for p in self.entries]

    # ------------------------------------------------------------ where the user was
    @property
    def _session_file(self) -> Path:
        return self.out / "annotator-session.json"

    def _remember(self, path: Path) -> None:
        """Note the file just opened, so a reload or a restart comes back to it."""
        rel = path.relative_to(self.folder).as_posix() if self.folder and path.is_relative_to(self.folder) else path.name
        if self._last_opened != rel:
            self._last_opened = rel
            atomic_write_text(self._session_file, json.dumps({"last_opened": rel}) + "\n")

    def resume(self, state: SessionState) -> str:
        """Open the file last open in this folder (by any tab, before a restart too), else the first."""
        try:
            rel = json.loads(self._session_file.read_text()).get("last_opened")
        except (OSError, ValueError, AttributeError):
            rel = None
        mine = self.queue(state.user)
        if mine:  # annotate --assign: a signed-in annotator starts on their own queue
            return self.open_index(state, mine[0], step=1)
        for k, path in enumerate(self.entries):
            shown = path.relative_to(self.folder).as_posix() if self.folder and path.is_relative_to(self.folder) \
                else path.name
            if shown == rel:
                return self.open_index(state, k, step=1)
        return self.open_index(state, 0, step=1)

    # ---------------------------------------------------------------- images
    def _read(self, path: str | Path, shown: str) -> np.ndarray:
        """Decode an image after checking its size from the header; errors name it as ``shown``."""
        size = image_size_from_header(path)
        if size is not None and size[0] * size[1] > self.max_pixels:
            raise SampromptError(f"{shown} is {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.0f} MP); the limit is "
                                 f"{self.max_pixels / 1e6:.0f} MP (annotate --max-pixels)")
        try:
            return to_rgb_uint8(path)
        except ImageError:
            raise SampromptError(f"cannot decode {shown} (corrupt or unsupported format)") from None

    def _open(self, state: SessionState, image: np.ndarray, name: str, key: str, source: str = "folder") -> str:
        rgb = to_rgb_uint8(image)
        if rgb.shape[0] * rgb.shape[1] > self.max_pixels:
            raise SampromptError(f"image is {rgb.shape[1]}x{rgb.shape[0]}; the limit is "
                                 f"{self.max_pixels / 1e6:.0f} MP (annotate --max-pixels)")
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
            ann.edits += imported  # imported objects are saved at the next save, as edits are
        state.ann, state.volume = ann, None
        state.box_start, state.proposal = None, 0
        self.seg.embed(rgb)  # encode once, now, so clicks are instant
        done = ", done" if ann.done else ""
        note = f" (resumed {len(ann.objects)} objects{done})" if resumed else \
            f" (imported {imported} objects)" if imported else ""
        return f"opened {ann.file_name}" + note + self._verdict_note(key)

    def _verdict_note(self, key: str) -> str:
        v = (self.ledger.get(key) or {}).get("verdict")
        if not v:
            return ""
        by = f" by {v['by']}" if v.get("by") else ""
        return f"; {v['state']}{by}" + (f": {v['comment']}" if v.get("comment") else "")

    def _open_volume(self, state: SessionState, path: Path, key: str) -> str:
        from ..errors import require
        from .video import VideoAnnotation, is_video
        from .volume import VolumeAnnotation

        if is_video(path):
            vol = VideoAnnotation(self.seg, path, key)
            what = f"video {vol.file_name} ({vol.window_note})"
        else:
            require("monai", "medical")
            vol = VolumeAnnotation(self.seg, path, key)
            vol.label_values = self.label_values
            what = f"volume {vol.file_name} ({' x '.join(map(str, vol.vol.shape))}, {vol.window_note})"
        resumed = vol.load(self.out)
        state.volume, state.ann = vol, vol.ann
        state.box_start, state.proposal = None, 0
        self.seg.embed(vol.ann.image)
        return (f"opened {what}" + (f" (resumed {len(vol.order)} objects)" if resumed else "")
                + self._verdict_note(key))

    def open_upload(self, state: SessionState, path: str | None) -> str:
        from ..domains.medical.volume import is_nifti

        if not path:
            raise SampromptError("no file uploaded")
        self._leave(state)
        name = Path(path).name
        data = Path(path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()[:12]
        for k, entry in enumerate(self.entries):  # the same file as one of the folder's: annotate it there
            if entry.is_file() and entry.stat().st_size == len(data) and entry.read_bytes() == data:
                return f"{name} is in the folder: opened it there; {self.open_index(state, k)}"
        try:
            if is_nifti(name):
                return self._open_volume(state, Path(path), f"{safe_name(_stem(Path(name)))}-{digest}")
            image = self._read(path, name)
            return self._open(state, image, name, f"{safe_name(Path(name).stem)}-{digest}", source="upload")
        except SampromptError as exc:  # say the file's name, never the server's temporary path
            text = str(exc).replace(str(path), name).replace(str(Path(path).parent), "")
            raise type(exc)(text) from None

    def _leave(self, state: SessionState) -> None:
        """Save the open image or volume before another is opened: stepping away never loses work.

        Objects that cannot be saved over another tab's save are kept in a copy file, and the next
        status line says where (``state.kept``)."""
        if state.ann is not None:
            try:
                self.autosave(state)
            except StaleSaveError:
                state.kept = self.keep_copy(state)

    def keep_copy(self, state: SessionState) -> str:
        """Write the tab's unsaved objects to ``KEY.copy-N.annotation.json``; returns what to tell the user."""
        ann = state.ann
        if ann is None or state.volume is not None or not ann.dirty():
            return ""
        path = ann.save_copy(self.out)
        ann.mark_saved()
        return f"your unsaved objects of {ann.file_name} were kept in {path.name}"

    def reopen(self, state: SessionState, shown: str) -> str:
        """Open the folder's file that the page shows as ``shown`` (its name in the file list)."""
        for k, path in enumerate(self.entries):
            name = path.relative_to(self.folder).as_posix() if self.folder and path.is_relative_to(self.folder) \
                else path.name
            if name == shown:
                return self.open_index(state, k)
        raise SampromptError(f"{shown} is not in this folder any more")

    def reload_saved(self, state: SessionState) -> str:
        """Keep the tab's unsaved objects in a copy file, then show the image as it was saved (by another tab)."""
        ann = self._need(state)
        kept = self.keep_copy(state)
        if state.volume is None and ann.source == "folder" and self.entries:
            message = self.open_index(state, state.index)
        else:
            message = self._open(state, ann.image, ann.file_name, ann.name, source=ann.source)
        return f"{kept}; {message}" if kept else message

    def open_index(self, state: SessionState, index: int, step: int = 0) -> str:
        """Open entry ``index``. With ``step`` (+1 next, -1 previous), a file that cannot be opened is marked
        broken in the file list and stepped over; without, its error is the answer."""
        if not self.entries:
            raise SampromptError("no folder of images was given; upload an image instead")
        self._leave(state)
        state.after_done = None
        index = int(np.clip(index, 0, len(self.entries) - 1))
        skipped: list[str] = []
        while True:
            path = self.entries[index]
            try:
                message = self._open_entry(state, index)
                self.broken.pop(path, None)
                break
            except StaleSaveError:
                raise
            except SampromptError as exc:
                if path not in self.broken:
                    self.broken[path] = str(exc)
                    self._files_version += 1
                if not step or not 0 <= index + step < len(self.entries):
                    raise
                skipped.append(f"{path.name} ({exc})")
                index += step
        self._remember(path)
        return f"skipped {'; '.join(skipped)}; {message}" if skipped else message

    def _open_entry(self, state: SessionState, index: int) -> str:
        path = self.entries[index]
        rel = path.relative_to(self.folder).as_posix() if self.folder and path.is_relative_to(self.folder) else path.name
        if path in self.volumes:
            message = self._open_volume(state, path, self.keys[path])
            state.index = index  # only once it opened: a file that fails leaves the tab where it was
            return message
        message = self._open(state, self._read(path, path.name), rel, self.keys[path])
        state.index = index
        nxt = state.index + 1
        if nxt < len(self.entries) and self.entries[nxt] not in self.volumes:  # encode the next image meanwhile
            self.prefetched = self.seg.prefetch(self.entries[nxt])
        return message

    def progress(self, state: SessionState) -> str:
        if not self.entries:
            return "upload an image to start"
        status = self.status()
        done = sum(v == "done" for v in status.values())
        saved = sum(v == "saved" for v in status.values())
        return f"file {state.index + 1} / {len(self.entries)} ({done} done, {saved} with saved annotations)"

    # ---------------------------------------------------------------- clicks
    def click(self, state: SessionState, x: float, y: float, mode: str, label: str, force: bool = False) -> str:
        ann = self._need(state)
        if mode == MODES[2]:
            if state.box_start is None:
                state.box_start = (x, y)
                return "box: click the opposite corner"
            (x0, y0), state.box_start = state.box_start, None
            box = (min(x0, x), min(y0, y), max(x0, x), max(y0, y))
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                raise SampromptError("box too small: click two different corners")
            ann.set_box(box, label=label, force=force)
        else:
            ann.add_point(x, y, positive=mode == MODES[0], label=label, force=force)
        return self._said(ann)

    @staticmethod
    def _said(ann: ImageAnnotation) -> str:
        obj = ann.objects[ann.current]  # type: ignore[index]
        return f"object {ann.current}: {obj.label}, score {obj.score:.3f}" if obj.score is not None else \
            f"object {ann.current}: {obj.label}"

    def _need(self, state: SessionState) -> ImageAnnotation:
        if state.ann is None:
            raise SampromptError("open an image first")
        return state.ann

    def command(self, state: SessionState, cmd: dict, label: str) -> str:
        """Apply one canvas command (``{"op": ...}``, see ``annotate/canvas.js``); returns the status line.

        A SAM prompt on an object corrected by hand is not applied: ``state.confirm`` asks the browser first."""
        ann = self._need(state) if cmd.get("op") not in ("open", "refresh", "key") else state.ann
        op, force, label = cmd.get("op"), bool(cmd.get("force")), label or "object"
        try:
            if op == "point":
                return self.click(state, float(cmd["x"]), float(cmd["y"]), MODES[0] if cmd.get("positive", True)
                                  else MODES[1], label, force)
            if op == "box":
                ann.set_box([float(v) for v in cmd["box"]], label=label, force=force)
                return self._said(ann)
        except EditsWouldBeLost as exc:
            state.confirm = {"message": f"{exc}. Replace them with SAM's mask?", "cmd": cmd}
            return f"⚠️ {exc}: not replaced"
        if op == "brush":
            ann.brush(cmd["points"], float(cmd["radius"]), erase=bool(cmd.get("erase")), label=label)
            return f"object {ann.current}: {'erased' if cmd.get('erase') else 'painted'} by hand"
        if op == "polygon":
            ann.set_polygons(cmd["polygons"])
            return f"object {ann.current}: polygon edited"
        if op == "draw_polygon":  # a new object drawn vertex by vertex
            obj = ann.draw_polygon(cmd["points"], label=label)
            return f"object {ann.current}: {obj.label}, drawn ({len(cmd['points'])} vertices)"
        if op == "reload_saved":
            return self.reload_saved(state)
        if op == "vertex":  # one vertex moved, added or removed: only that ring's pixels change
            to = cmd.get("to")
            changed = ann.edit_vertex(int(cmd["ring"]), int(cmd["k"]), to=to, insert=bool(cmd.get("insert")),
                                      remove=bool(cmd.get("remove")))
            return f"object {ann.current}: polygon edited" if changed else "vertex unchanged"
        if op == "pick":
            return self.pick(state, float(cmd["x"]), float(cmd["y"]))
        if op == "open":
            return self.open_index(state, int(cmd["index"]))
        if op == "refresh":
            state.shown = None
            return ""
        if op in ("slice", "window", "plane", "propagate"):
            vol = state.volume
            if vol is None:
                raise SampromptError("slices, planes, windows and propagation are for volumes and videos")
            if op == "slice":
                before = vol.k
                state.ann = vol.open_slice(int(cmd["k"]))
                ahead = vol.k + (1 if vol.k >= before else -1)  # the next slice the way the user scrolls
                if 0 <= ahead < vol.view.n:
                    self.prefetched = self.seg.prefetch(vol.view.image(ahead))
                return f"{'frame' if getattr(vol, 'kind', '') == 'video' else 'slice'} {vol.k}"
            if op == "window":
                state.ann = vol.set_window(str(cmd["name"]))
                return vol.window_note
            if op == "plane":
                state.ann = vol.set_plane(str(cmd["name"]))
                return f"{vol.plane} slices ({vol.view.n})"
            message = vol.propagate()
            state.ann = vol.ann
            return message
        if op == "key":
            return self.key(state, str(cmd.get("key")), label)
        raise SampromptError(f"unknown canvas command {op!r}")

    def key(self, state: SessionState, name: str, label: str = "object") -> str:
        """A named action (a keyboard shortcut or a button): see :data:`KEYS`."""
        if name == "next":
            return self.open_index(state, state.index + 1 if state.ann else 0, step=1)
        if name == "prev":
            return self.open_index(state, state.index - 1, step=-1)
        if name == "done":
            return self.done(state)
        ann = self._need(state)
        if name == "new":
            return f"object {ann.new_object(label)}"
        if name == "undo":
            if ann.undo():
                return "undone"
            return self.undo_done(state) if state.after_done else "nothing to undo"
        if name == "redo":
            return "redone" if ann.redo() else "nothing to redo"
        if name in ("hide", "lock"):
            if ann.current is None:
                return "no object selected"
            on = ann.toggle(ann.current, "hidden" if name == "hide" else "locked")
            what = ("hidden" if on else "shown") if name == "hide" else ("locked" if on else "unlocked")
            return f"object {ann.current} ({ann.objects[ann.current].label}) {what}"
        if name == "delete":
            if ann.current is None:
                return "no object selected"
            ann.delete(ann.current)
            return "deleted"
        if name == "clear":
            ann.clear()
            return "cleared"
        if name == "propose":
            tiny = self.seg.model_id.startswith("tiny:")  # the stock thresholds find few objects with it
            n = len(ann.propose(**(TINY_PROPOSALS if tiny else {})))
            state.proposal = 0
            return f"{n} proposals: accept (a) or discard (d) the highlighted one"
        if name == "accept":
            if not ann.proposals:
                return "no proposals left"
            ann.accept(0, label)
            return f"accepted; {len(ann.proposals)} left"
        if name == "discard":
            if not ann.proposals:
                return "no proposals left"
            ann.discard(0)
            return f"discarded; {len(ann.proposals)} left"
        raise SampromptError(f"unknown action {name!r}; one of {', '.join(KEYS)}")

    def undo_done(self, state: SessionState) -> str:
        """Take back the last "done": the file is marked unfinished again and, if done moved on, reopened."""
        index, key = state.after_done  # type: ignore[misc]
        state.after_done = None
        if self.entries and self.keys.get(self.entries[index]) == key and state.index != index:
            self.open_index(state, index)
        target = state.volume if state.volume is not None else state.ann
        if target is None or target.name != key:
            return "nothing to undo"
        target.done = False
        self.autosave(state, always=True)
        self.ledger.unmarked(target.name)
        self.write_status()
        return f"{target.file_name} is not done any more"

    def review(self, state: SessionState, verdict: str, comment: str = "") -> str:
        """A reviewer's verdict (``accepted`` or ``rejected``, with a comment) on the open file, which must be done;
        then the next file that awaits review opens (the reviewer's queue)."""
        ann = self._need(state)
        target = state.volume if state.volume is not None else ann
        if self.roles and self.roles.get(state.user) != "reviewer":
            raise SampromptError(f"only a reviewer can accept or reject files; {state.user} is "
                                 f"{'an ' + self.roles[state.user] if state.user in self.roles else 'not a user'}")
        if not target.done:
            raise SampromptError(f"{target.file_name} is not marked done yet: a file is reviewed once its annotator "
                                 "has finished it")
        self.ledger.judge(target.name, verdict, state.user, comment)
        self._files_version += 1
        self.write_status()
        message = f"{target.file_name} {verdict}"
        if not (state.auto_advance and self.entries):
            return message
        states = self.states()
        order = list(range(state.index + 1, len(self.entries))) + list(range(state.index))
        queue = [k for k in order  # the reviewer's queue: files done and not yet judged
                 if states.get(self.keys[self.entries[k]]) == "done" and self.entries[k] not in self.broken]
        opened = self._open_first(state, queue)
        return f"{message}; {opened or 'no file awaits review'}"

    def _open_first(self, state: SessionState, candidates: list[int]) -> str | None:
        """Open the first of these entries that opens (one that cannot is marked broken); None if none does."""
        for k in candidates:
            try:
                return self.open_index(state, k)
            except StaleSaveError:
                raise
            except SampromptError:
                continue
        return None

    def pick(self, state: SessionState, x: float, y: float) -> str:
        """Select the object under (x, y): the smallest one there, so a small object on a large one wins."""
        ann = self._need(state)
        h, w = ann.size
        i, j = min(int(y), h - 1), min(int(x), w - 1)
        hits = [(int(o.mask.sum()), k) for k, o in enumerate(ann.objects)
                if o.mask is not None and not o.hidden and o.mask[i, j]]
        if not hits:
            return "no object there"
        ann.select(min(hits)[1])
        return f"selected object {ann.current}: {ann.objects[ann.current].label}"

    def done(self, state: SessionState) -> str:
        """Mark the open image (or volume) finished and save it; with auto-advance, open the next unfinished one."""
        ann = self._need(state)
        target = state.volume if state.volume is not None else ann
        target.done = True
        self.autosave(state, always=True)
        back = self.ledger.marked_done(target.name, state.user)
        self._files_version += 1
        self.write_status()
        message = (f"{ann.file_name if state.volume is None else state.volume.file_name} done (z takes it back)"
                   + ("; back in the reviewers' queue" if back else ""))
        state.after_done = (state.index, target.name)
        if state.auto_advance and self.entries:
            order = list(range(state.index + 1, len(self.entries))) + list(range(state.index))
            states = self.states()  # the next file not finished, or rejected back to its annotator
            todo = [k for k in order if states.get(self.keys[self.entries[k]]) not in ("done", "accepted")
                    and self.entries[k] not in self.broken]
            if self.assign and state.user:  # annotate --assign: the user's own queue, no one else's files
                todo = self.queue(state.user)
            marked = state.after_done
            opened = self._open_first(state, todo)  # the next unfinished file that opens
            if opened is not None:
                state.after_done = marked  # undo on the file opened takes the done back
                return f"{message}; {opened}"
            return f"{message}; " + ("no file is left for you" if self.assign and state.user
                                     else "every file of the folder is done")
        return message

    # ---------------------------------------------------------------- render
    def render(self, state: SessionState) -> np.ndarray | None:
        """The image with its masks, points and boxes drawn in (for notebooks and scripts)."""
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

    def view(self, state: SessionState) -> dict:
        """The canvas document for this tab (``annotate/canvas.py``): the picture only when it is new to it."""
        from .canvas import view_payload

        state.seq += 1
        ann = state.ann
        token = (ann.name, id(ann.image)) if ann is not None else None
        with_image = token is not None and token != state.shown
        state.shown = token
        extra: dict = {"index": state.index if self.entries else None}
        if self.entries and (with_image or state.files_seen != self._files_version):  # a long list, sent on change
            extra["files"], state.files_seen = self.files(), self._files_version
        if state.volume is not None:
            extra.update(volume=state.volume.summary(), keep_view=True,
                         flip_y=getattr(state.volume, "flip_y", True))  # a volume's anterior or superior up
        if state.confirm is not None:
            extra["confirm"], state.confirm = state.confirm, None
        return view_payload(ann, self.classes, seq=state.seq, ack=state.ack, with_image=with_image, extra=extra)

    def autosave(self, state: SessionState, always: bool = False) -> None:
        """Save after every change, so a server restart loses nothing the user did (unchanged: nothing written)."""
        ann = state.ann
        if ann is None:
            return
        if state.volume is not None:
            vol = state.volume
            vol.store()
            if always or vol.dirty():  # opening or looking never writes: only changes are saved
                vol.save(self.out)
                self._mark(vol.name, vol)
            return
        if always or ann.dirty():
            ann.save(self.out)
            self._mark(ann.name, ann)

    def _mark(self, key: str, target) -> None:
        if self._status is not None and key in self._status:
            has = bool(getattr(target, "objects", None) or getattr(target, "order", None))
            new = "done" if getattr(target, "done", False) else "saved" if has else ""
            if self._status[key] != new:
                self._status[key] = new
                self._files_version += 1

    def object_choices(self, state: SessionState) -> list[str]:
        if state.ann is None:
            return []
        return [f"{i}: {o.label}" + " (hidden)" * o.hidden + " (locked)" * o.locked
                for i, o in enumerate(state.ann.objects)]

    def export(self, state: SessionState) -> list[str]:
        ann = self._need(state)
        for o in ann.objects:
            self.add_class(o.label)
        if state.volume is not None:
            check_outputs(state.volume.export_paths(self.out), inputs=self.entries)
            return [str(p) for p in state.volume.export(self.out)]
        check_outputs([self.out / "classes.txt"], inputs=self.entries)
        paths = ann.export(self.out, categories=self.classes)
        if "labels" in {p.parent.name for p in paths}:
            paths.append(atomic_write_text(self.out / "classes.txt", "\n".join(self.classes) + "\n"))
        return [str(p) for p in paths]

    def export_note(self, state: SessionState) -> str:
        """What the user should know of an image's export: objects left out, and pixels a format lost."""
        ann = state.ann
        if ann is None or state.volume is not None:
            return ""
        from ..export import export_losses

        notes = []
        twins = [p.name for p in self.entries if p.stem == ann.yolo_stem and p.name != ann.file_name]
        if twins:
            notes.append(f"{ann.file_name} and {', '.join(twins)} share the stem {ann.yolo_stem!r}: YOLO pairs "
                         f"labels/{ann.yolo_stem}.txt with each of them; rename one before training")
        if ann.empty_objects():
            notes.append(f"{ann.empty_objects()} object(s) with an empty mask left out")
        loss = export_losses(np.stack([o.mask for o in ann.objects if o.mask is not None and o.mask.any()])
                             if any(o.mask is not None and o.mask.any() for o in ann.objects)
                             else np.zeros((0, *ann.size), bool))
        if loss["label_map_partial"] or loss["label_map_hidden"]:
            notes.append(f"objects overlap: the PNG label map shows {loss['label_map_partial']} in part and "
                         f"{loss['label_map_hidden']} not at all (one object per pixel; COCO keeps each whole)")
        if loss["yolo_worst"] < 0.98:
            notes.append(f"YOLO polygons keep {loss['yolo_mean']:.0%} of the objects' pixels on average "
                         f"(worst {loss['yolo_worst']:.0%}; COCO keeps them all)")
        return "".join(f"; {n}" for n in notes)

    def export_all(self, state: SessionState, accepted_only: bool = False) -> list[str]:
        """The folder's saved annotations (uploads are not part of it) as one COCO file, ``coco_all.json``,
        as a YOLO-seg dataset that YOLO's tools load as it is (:meth:`export_yolo_dataset`), as CVAT for
        images 1.1 XML (``cvat.xml``, masks) and as a Label Studio task file (``label_studio.json``, brush
        regions, images as local-files URLs of their path in the folder); ``accepted_only``: only the files
        a reviewer accepted. Returns the four paths (the YOLO dataset's ``data.yaml``)."""
        from ..export import CocoWriter
        from . import cvat, label_studio

        coco = CocoWriter(self.classes)
        saved, rels = [], []
        states = self.states() if accepted_only else {}
        for path in self.images:
            file = self.out / f"{self.keys[path]}.annotation.json"
            if not file.exists() or (accepted_only and states.get(self.keys[path]) != "accepted"):
                continue
            _, (h, w), objects = read_saved(file)
            objs = [o for o in objects if o.mask is not None and o.mask.any()]  # as the per-image exports
            for o in objs:
                self.add_class(o.label)
            masks = np.stack([o.mask for o in objs]) if objs else np.zeros((0, h, w), bool)
            rel = path.relative_to(self.folder).as_posix() if self.folder and path.is_relative_to(self.folder) \
                else path.name
            who = [{k: getattr(o, k) for k in WHO if getattr(o, k) is not None} for o in objs]
            coco.add_image(rel, masks, labels=[o.label for o in objs], height=h, width=w,
                           attributes=who if any(who) else None)
            saved.append((path, masks, [o.label for o in objs], who))
            rels.append(rel)
        if not saved:
            raise SampromptError("no file of this folder has been accepted yet: nothing to export" if accepted_only
                                 else "no image of this folder has saved objects yet: nothing to export")
        outs = [self.out / n for n in ("coco_all.json", "cvat.xml", "label_studio.json")]
        check_outputs(outs, inputs=self.entries)
        written = coco.write(outs[0], overwrite=True)
        images = [(rel, masks.shape[1:], list(zip(labels, masks, who))) for (_, masks, labels, who), rel
                  in zip(saved, rels)]
        xml = cvat.write_xml(outs[1], images, list(self.classes))
        tasks = label_studio.write_tasks(outs[2], images)
        for path in (xml, tasks):
            record_written(path)
        return [str(written), str(self.export_yolo_dataset(saved)), str(xml), str(tasks)]

    def export_yolo_dataset(self, saved: list[tuple[Path, np.ndarray, list[str], list[dict]]]) -> Path:
        """``OUT/yolo/``: ``images/`` (hard links to the folder's annotated images, or copies across disks),
        ``labels/`` (one YOLO-seg file per image, paired by name as YOLO pairs them) and ``data.yaml`` with
        the dataset's absolute path and the folder's class ids. Two images with one stem are named by their
        annotation key instead, so that every label file pairs with exactly one image. Who made and edited
        each object goes beside its label file (``labels/STEM.who.json``, one entry per line)."""
        import os
        import shutil

        from ..export import export_yolo

        root = self.out / "yolo"
        stems = Counter(p.stem for p, *_ in saved)
        targets = [(root / "images" / ((p.stem if stems[p.stem] == 1 else self.keys[p]) + p.suffix.lower()))
                   for p, *_ in saved]
        check_outputs([root / "data.yaml", *targets], inputs=self.entries, overwrite=True)
        (root / "images").mkdir(parents=True, exist_ok=True)
        keep = set(targets)
        for (path, masks, labels, who), image in zip(saved, targets):
            image.unlink(missing_ok=True)
            try:
                os.link(path, image)
            except OSError:  # another file system, or links not allowed
                shutil.copy2(path, image)
            record_written(image)  # ours: a later export may take it away again
            label = root / "labels" / f"{image.stem}.txt"
            export_yolo(label, masks, [self.classes.index(c) for c in labels], overwrite=True, who=who)
            keep |= {label, label.with_suffix(".who.json")}
        for folder in (root / "images", root / "labels"):  # what an earlier export wrote and this one does not
            for old in folder.iterdir() if folder.is_dir() else ():  # (accepted files only, a file deleted)
                if old not in keep and old.is_file() and written_by_samprompt(old):
                    old.unlink()
        names = "\n".join(f"  {i}: {json.dumps(n)}" for i, n in enumerate(self.classes))
        return atomic_write_text(root / "data.yaml", f"# written by samprompt annotate; move the folder and edit "
                                 f"path\npath: {json.dumps(str(root.resolve()))}\ntrain: images\nval: images\n"
                                 f"names:\n{names}\n")
