"""The state of an interactive annotation of one image, independent of any UI.

An :class:`ImageAnnotation` holds the objects of one image, each with a class
label, the prompt that made its mask (points, labels, box) and the mask. Every
edit goes through it, so undo/redo, saving and resuming work the same from the
Gradio annotator, a notebook or a test. Masks are recomputed from the cached
image embedding after each edit: the encoder runs once per image.

Saved state (``KEY.annotation.json``) is the prompts JSON schema plus, per
object, the accepted mask as COCO RLE, so a session can be replayed or resumed.
KEY is unique per image (the annotator derives it from the path in the folder,
or from an upload's content); the file also records the image's ``file_name``
and a ``revision``: a save based on an older revision than the file's is
refused (:class:`StaleSaveError`), so two tabs on one image never overwrite
each other's objects.

Masks can be corrected by hand after SAM: :meth:`ImageAnnotation.brush` paints
or erases on top of the object's mask and :meth:`ImageAnnotation.set_polygons`
replaces it with edited polygons. Either marks the object ``edited``; a later
SAM prompt on it raises :class:`EditsWouldBeLost` unless ``force=True``, so a UI
can ask before dropping hand edits. Undo covers every edit, proposals included:
undoing an accept brings the proposal back.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..errors import PromptError, SampromptError
from ..export import CocoWriter, export_png, export_yolo
from ..io import atomic_write_text
from ..masks import mask_to_rle, rle_to_mask
from ..prompts import SCHEMA_VERSION, Prompt
from ..segmenter import Segmenter

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SAVE_LOCK = threading.Lock()  # saves of every image are checked and written one at a time


class StaleSaveError(SampromptError):
    """The save file changed since this annotation was loaded (another tab saved it)."""


class EditsWouldBeLost(SampromptError):
    """A SAM prompt would replace an object's brush or polygon edits (pass ``force=True`` to go ahead)."""


def safe_name(name: str, default: str = "image") -> str:
    """A file-name stem without path separators or odd characters (no traversal)."""
    stem = Path(str(name).replace("\\", "/")).name
    stem = _SAFE.sub("_", stem).strip("._")
    return stem[:100] or default


@dataclass
class AnnotatedObject:
    """One object: class label, its prompt state and its current mask ((H, W) bool or None)."""

    label: str
    points: list[tuple[float, float]] = field(default_factory=list)
    point_labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = None
    score: float | None = None
    edited: bool = False  # corrected by hand (brush, eraser, polygon) after SAM
    uid: int | None = None  # a stable id where the object lives on beyond this image (a volume's slices)
    hidden: bool = False  # not drawn and not picked (still saved and exported)
    locked: bool = False  # no edit reaches it until it is unlocked
    created_by: str | None = None  # with sign-in (annotate --users): who made it and who last changed it, when
    created_at: str | None = None
    edited_by: str | None = None
    edited_at: str | None = None
    # the outline as last edited by hand, valid while ``outline_of`` is still the object's mask (any other
    # edit puts a new array there): so an inserted vertex stays, and one edit never re-simplifies the rest
    outline: list | None = field(default=None, repr=False, compare=False)
    outline_of: np.ndarray | None = field(default=None, repr=False, compare=False)
    rle_of: tuple | None = field(default=None, repr=False, compare=False)  # (mask, its COCO RLE), for saves

    def rle(self) -> dict | None:
        """The mask as COCO RLE, encoded once per mask (a save writes every object's)."""
        if self.mask is None:
            return None
        if self.rle_of is None or self.rle_of[0] is not self.mask:
            self.rle_of = (self.mask, mask_to_rle(self.mask))
        return self.rle_of[1]

    def prompt(self, logits: np.ndarray | None = None) -> Prompt | None:
        if not self.points and self.box is None:
            return None
        return Prompt(points=self.points, labels=self.point_labels, box=self.box, mask=logits, label=self.label)


WHO = ("created_by", "created_at", "edited_by", "edited_at")


def stamp_objects(ann: "ImageAnnotation", user: str | None) -> None:
    """After an edit by ``user`` (a signed-in name): objects nobody made yet are theirs, and the selected
    object was last edited by them, now (UTC, ISO 8601)."""
    if not user:
        return
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for o in ann.objects:
        if o.created_by is None:
            o.created_by, o.created_at = user, now
    if ann.current is not None and 0 <= ann.current < len(ann.objects):
        o = ann.objects[ann.current]
        o.edited_by, o.edited_at = user, now


def saved_revision(path: Path) -> int:
    """The revision a save file holds (0 for none, or for files written before revisions existed)."""
    try:
        return int(json.loads(path.read_text()).get("revision", 0))
    except (OSError, ValueError, AttributeError):
        return 0


def check_revision(path: Path, revision: int, file_name: str) -> int:
    """The revision saved at ``path``; :class:`StaleSaveError` when it is newer than ``revision`` (another tab's)."""
    on_disk = saved_revision(path)
    if on_disk > revision:
        raise StaleSaveError(f"{file_name} was saved from another tab meanwhile (revision {on_disk}); "
                             "reopen it to see those objects: your last change was not saved")
    return on_disk


def read_saved(path: str | Path) -> tuple[str, tuple[int, int], list[AnnotatedObject]]:
    """Parse a saved ``NAME.annotation.json``: (image name, (H, W), objects with their masks)."""
    doc = json.loads(Path(path).read_text())
    objects = []
    for o in doc.get("objects", []):
        rle = o.get("accepted_mask")
        objects.append(
            AnnotatedObject(
                label=o.get("label") or "object",
                points=[tuple(p) for p in o.get("points", [])],
                point_labels=list(o.get("labels", [])),
                box=tuple(o["box"]) if o.get("box") else None,
                mask=rle_to_mask(rle) if rle else None,
                score=o.get("score"),
                edited=bool(o.get("edited", False)),
                hidden=bool(o.get("hidden", False)),
                locked=bool(o.get("locked", False)),
                **{k: o.get(k) for k in WHO},
            )
        )
    h, w = doc["image_size"]
    return doc["image"], (int(h), int(w)), objects


class ImageAnnotation:
    """Objects of one image with undo/redo; masks come from ``segmenter``.

    Args:
        segmenter: the :class:`Segmenter` (its cache makes re-prompting cheap).
        image: (H, W, 3) uint8 RGB.
        name: the image's file name; its sanitised stem names the exports.
        max_history: undo depth.
    """

    def __init__(self, segmenter: Segmenter, image: np.ndarray, name: str, max_history: int = 100,
                 key: str | None = None) -> None:
        self.seg = segmenter
        self.image = image
        self.file_name = Path(str(name).replace("\\", "/")).name
        self.name = key or safe_name(Path(self.file_name).stem)  # the save file's and the exports' stem
        self.revision = 0
        self.source = "folder"
        self.objects: list[AnnotatedObject] = []
        self.current: int | None = None
        self.proposals: list[np.ndarray] = []
        self.done = False  # the annotator marked this image finished
        self.edits = 0  # counts changes; compared with the count at the last save or load
        self._saved_at = 0
        self._undo: list[tuple] = []
        self._redo: list[tuple] = []
        self.max_history = max_history

    # ------------------------------------------------------------- history
    def _snapshot(self) -> tuple:
        # Masks are never changed in place (every edit puts a new array there), so an undo step shares them:
        # copying every mask at every edit made a click cost more with each object on the image.
        objects = [replace(o, points=list(o.points), point_labels=list(o.point_labels)) for o in self.objects]
        return objects, self.current, list(self.proposals)

    def dirty(self) -> bool:
        """Whether the objects changed since the last save or load."""
        return self.edits != self._saved_at

    def mark_saved(self) -> None:
        self._saved_at = self.edits

    def _checkpoint(self) -> None:
        self.edits += 1
        self._undo.append(self._snapshot())
        self._undo = self._undo[-self.max_history :]
        self._redo.clear()

    def _swap(self, source: list, target: list) -> bool:
        """Restore the latest state of ``source``, pushing the present one onto ``target``."""
        if not source:
            return False
        self.edits += 1
        target.append(self._snapshot())
        self.objects, self.current, self.proposals = source.pop()
        return True

    def undo(self) -> bool:
        """Go back one edit; returns False when there is nothing to undo."""
        return self._swap(self._undo, self._redo)

    def redo(self) -> bool:
        """Re-apply an undone edit; returns False when there is nothing to redo."""
        return self._swap(self._redo, self._undo)

    # --------------------------------------------------------------- edits
    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]

    def new_object(self, label: str = "object") -> int:
        """Start a new (empty) object and make it current; returns its index."""
        self._checkpoint()
        self.objects.append(AnnotatedObject(label=label))
        self.current = len(self.objects) - 1
        return self.current

    def _current(self, label: str) -> AnnotatedObject:
        if self.current is None:
            self.objects.append(AnnotatedObject(label=label))
            self.current = len(self.objects) - 1
        return self.objects[self.current]

    def _check_unlocked(self, index: int | None) -> None:
        obj = self.objects[index] if index is not None and 0 <= index < len(self.objects) else None
        if obj is not None and obj.locked:
            raise PromptError(f"object {index} ({obj.label}) is locked: unlock it (l) to edit it, or start a new "
                              "object (n)")

    def _check_edits(self, force: bool) -> None:
        self._check_unlocked(self.current)
        obj = self.objects[self.current] if self.current is not None else None
        if obj is not None and obj.edited and not force:
            raise EditsWouldBeLost(f"object {self.current} ({obj.label}) was corrected by hand; a new SAM prompt "
                                   "replaces those edits")

    def add_point(self, x: float, y: float, positive: bool = True, label: str = "object",
                  force: bool = False) -> AnnotatedObject:
        """Add a click to the current object (a new one if none) and update its mask.

        Raises :class:`EditsWouldBeLost` when the object was edited by hand, unless ``force``."""
        h, w = self.size
        if not (0 <= x <= w and 0 <= y <= h):
            raise PromptError(f"point ({x}, {y}) lies outside the {w}x{h} image")
        self._check_edits(force)
        self._checkpoint()
        obj = self._current(label)
        obj.points.append((float(x), float(y)))
        obj.point_labels.append(1 if positive else 0)
        self._update(obj)
        return obj

    def set_box(self, box: Sequence[float], label: str = "object", force: bool = False) -> AnnotatedObject:
        """Set the box of the current object (a new one if none) and update its mask (see :meth:`add_point`)."""
        Prompt(box=box).validate(*self.size)
        self._check_edits(force)
        self._checkpoint()
        obj = self._current(label)
        obj.box = tuple(float(v) for v in box)  # type: ignore[assignment]
        self._update(obj)
        return obj

    def _update(self, obj: AnnotatedObject) -> None:
        prompt = obj.prompt()
        obj.edited = False
        if prompt is None:
            obj.mask, obj.score = None, None
            return
        res = self.seg.predict(self.image, prompt)
        obj.mask, obj.score = res.mask, res.score

    # ------------------------------------------------------- hand edits
    def brush(self, points: Sequence[Sequence[float]], radius: float, erase: bool = False,
              label: str = "object") -> AnnotatedObject:
        """Paint (or erase) a stroke through ``points`` (x, y) of ``radius`` px on the current object's mask.

        Painting with no current object starts one; the edit is applied on top of the SAM mask."""
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        if not len(pts) or not np.isfinite(pts).all():
            raise PromptError("a brush stroke needs at least one finite (x, y) point")
        if not radius > 0:
            raise PromptError(f"brush radius must be > 0, got {radius}")
        if self.current is None and erase:
            raise PromptError("select an object to erase from")
        self._check_unlocked(self.current)
        self._checkpoint()
        obj = self._current(label)
        h, w = self.size
        canvas = np.zeros((h, w), np.uint8) if obj.mask is None else np.ascontiguousarray(obj.mask, np.uint8)
        ij = np.round(np.clip(pts, -1, [w + 1, h + 1]) - 0.5).astype(np.int32)  # (x, y) -> the pixel it falls in
        r = max(0, int(round(min(radius, max(h, w)) - 0.5)))  # no wider than the image
        value = 0 if erase else 1
        if len(ij) == 1:
            cv2.circle(canvas, (int(ij[0, 0]), int(ij[0, 1])), r, value, -1)
        else:
            cv2.polylines(canvas, [ij.reshape(-1, 1, 2)], False, value, 2 * r + 1)
            for x, y in ij[[0, -1]]:
                cv2.circle(canvas, (int(x), int(y)), r, value, -1)
        obj.mask, obj.edited = canvas.astype(bool), True
        return obj

    def polygons(self, index: int | None = None, tolerance: float = 1.0) -> list[list[list[float]]]:
        """The object's mask as polygons (outer rings and holes), simplified by ``tolerance`` px, for editing
        by hand. Vertices are the centres (i + 0.5, j + 0.5) of the outline's pixels, so
        :meth:`set_polygons` of the unsimplified polygons gives the mask back."""
        index = self.current if index is None else index
        if index is None:
            return []
        self._check(index)
        obj = self.objects[index]
        mask = obj.mask
        if mask is None or not mask.any():
            return []
        if obj.outline is not None and obj.outline_of is mask:
            return [[list(p) for p in ring] for ring in obj.outline]
        cs, _ = cv2.findContours(np.ascontiguousarray(mask, np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        out = []
        for c in cs:
            c = cv2.approxPolyDP(c, tolerance, True) if len(c) > 8 else c
            if len(c) >= 3:
                out.append([[float(x) + 0.5, float(y) + 0.5] for x, y in c.reshape(-1, 2)])
        return out

    def set_polygons(self, polygons: Sequence[Sequence[Sequence[float]]], index: int | None = None) -> None:
        """Replace the object's mask with the filled ``polygons`` (even-odd, so holes stay holes); the pixels
        whose centres the vertices are belong to the outline (see :meth:`polygons`)."""
        index = self.current if index is None else index
        if index is None:
            raise PromptError("select an object to edit")
        self._check(index)
        self._check_unlocked(index)
        h, w = self.size
        rings = []
        for poly in polygons:
            ring = np.asarray(poly, np.float64).reshape(-1, 2)
            if len(ring) < 3 or not np.isfinite(ring).all():
                raise PromptError("a polygon needs at least three finite (x, y) vertices")
            ring = np.clip(ring, -1, [w + 1, h + 1])  # far-off vertices: clipped, not wrapped around int32
            rings.append(np.round(ring - 0.5).astype(np.int32).reshape(-1, 1, 2))
        self._checkpoint()
        canvas = np.zeros((h, w), np.uint8)
        if rings:
            cv2.fillPoly(canvas, rings, 1)
        obj = self.objects[index]
        obj.mask, obj.edited = canvas.astype(bool), True
        self.current = index

    def edit_vertex(self, ring: int, k: int, *, to: Sequence[float] | None = None, insert: bool = False,
                    remove: bool = False, index: int | None = None) -> bool:
        """Move vertex ``k`` of ring ``ring`` of the outline (:meth:`polygons`) ``to`` (x, y), insert a vertex
        ``to`` after it (``insert``), or remove it (``remove``; a ring left with under three vertices goes).

        Only the pixels between the ring's old and new shape change (the rest of the mask, other
        rings included, stays as it was), and the edited outline is kept as drawn. Returns False
        when nothing changes (a vertex "moved" to where it is).
        """
        index = self.current if index is None else index
        if index is None:
            raise PromptError("select an object to edit")
        self._check_unlocked(index)
        rings = self.polygons(index)
        if not 0 <= ring < len(rings) or not 0 <= k < len(rings[ring]):
            raise PromptError(f"no vertex {k} on ring {ring} of object {index}")
        old = [list(p) for p in rings[ring]]
        new = [list(p) for p in old]
        if remove:
            del new[k]
        else:
            if to is None or len(to) != 2 or not np.isfinite(np.asarray(to, float)).all():
                raise PromptError("a vertex needs a finite (x, y)")
            h, w = self.size
            p = [float(np.clip(to[0], 0, w)), float(np.clip(to[1], 0, h))]
            if insert:
                new.insert(k + 1, p)
            elif np.allclose(p, old[k], atol=1e-6):
                return False
            else:
                new[k] = p
        self._checkpoint()
        obj = self.objects[index]
        changed = self._fill(old) ^ (self._fill(new) if len(new) >= 3 else np.zeros(self.size, bool))
        obj.mask = obj.mask ^ changed
        obj.edited = True
        rings = [r for n, r in enumerate(rings) if n != ring] if len(new) < 3 else \
            [new if n == ring else r for n, r in enumerate(rings)]
        obj.outline, obj.outline_of = rings, obj.mask
        self.current = index
        return True

    def _fill(self, ring) -> np.ndarray:
        """The pixels a ring covers, as :meth:`set_polygons` fills it."""
        h, w = self.size
        pts = np.clip(np.asarray(ring, np.float64).reshape(-1, 2), -1, [w + 1, h + 1])
        canvas = np.zeros((h, w), np.uint8)
        cv2.fillPoly(canvas, [np.round(pts - 0.5).astype(np.int32).reshape(-1, 1, 2)], 1)
        return canvas.astype(bool)

    def select(self, index: int) -> None:
        self._check(index)
        self.current = index

    def rename(self, index: int, label: str) -> None:
        self._check(index)
        self._check_unlocked(index)
        self._checkpoint()
        self.objects[index].label = label

    def delete(self, index: int) -> None:
        self._check(index)
        self._check_unlocked(index)
        self._checkpoint()
        del self.objects[index]
        self.current = None if not self.objects else min(index, len(self.objects) - 1)

    def clear(self) -> None:
        """Delete every object that is not locked."""
        self._checkpoint()
        self.objects = [o for o in self.objects if o.locked]
        self.current = len(self.objects) - 1 if self.objects else None

    def toggle(self, index: int, flag: str) -> bool:
        """Hide or show (``flag="hidden"``), lock or unlock (``"locked"``) object ``index``, as an undo step;
        returns the new value. A hidden object is not drawn and not picked; a locked one refuses every edit."""
        self._check(index)
        if flag not in ("hidden", "locked"):
            raise PromptError(f"unknown object flag {flag!r}; hidden or locked")
        self._checkpoint()
        obj = self.objects[index]
        setattr(obj, flag, not getattr(obj, flag))
        return getattr(obj, flag)

    def draw_polygon(self, points: Sequence[Sequence[float]], label: str = "object") -> AnnotatedObject:
        """A new object drawn by hand as one polygon (x, y vertices, at least three), kept as drawn."""
        ring = np.asarray(points, np.float64).reshape(-1, 2) if len(points) else np.zeros((0, 2))
        if len(ring) < 3 or not np.isfinite(ring).all():
            raise PromptError("a polygon needs at least three finite (x, y) vertices")
        h, w = self.size
        ring = np.clip(ring, 0, [w, h])
        mask = self._fill(ring)
        if not mask.any():
            raise PromptError("the polygon covers no pixel centre: draw it larger")
        self._checkpoint()
        obj = AnnotatedObject(label=label, mask=mask, edited=True)
        obj.outline, obj.outline_of = [ring.tolist()], mask
        self.objects.append(obj)
        self.current = len(self.objects) - 1
        return obj

    def _check(self, index: int) -> None:
        if not 0 <= index < len(self.objects):
            raise IndexError(f"no object {index}; there are {len(self.objects)}")

    # ----------------------------------------------------------- proposals
    def propose(self, repeat_iou: float = 0.5, covered: float = 0.8, **kwargs) -> list[np.ndarray]:
        """Segment-everything proposals (not yet objects): accept or discard them one by one.

        A proposal that repeats an existing object is dropped: IoU >= ``repeat_iou`` with one, or at
        least ``covered`` of its pixels already inside the objects (a piece of one)."""
        masks = self.seg.segment_everything(self.image, **kwargs).masks
        self.proposals = [m for m in masks if not self._repeats(m, repeat_iou, covered)]
        return self.proposals

    def _repeats(self, m: np.ndarray, repeat_iou: float, covered: float) -> bool:
        from ..masks import iou

        have = [o.mask for o in self.objects if o.mask is not None]
        if not have:
            return False
        if any(iou(m, h) >= repeat_iou for h in have):
            return True
        union = np.logical_or.reduce(have)
        return int((m & union).sum()) >= covered * max(1, int(m.sum()))

    def accept(self, k: int, label: str = "object") -> AnnotatedObject:
        """Make proposal ``k`` an object (undo brings the proposal back)."""
        self._checkpoint()
        mask = self.proposals.pop(k)
        obj = AnnotatedObject(label=label, mask=mask)
        self.objects.append(obj)
        self.current = len(self.objects) - 1
        return obj

    def discard(self, k: int) -> None:
        """Drop proposal ``k`` (an undo step of its own: undo brings it back, and only it)."""
        self._checkpoint()
        self.proposals.pop(k)

    # ---------------------------------------------------------- save/load
    def masks(self) -> np.ndarray:
        """(N, H, W) bool masks of the objects that have one."""
        ms = [o.mask for o in self.objects if o.mask is not None]
        return np.stack(ms) if ms else np.zeros((0, *self.size), bool)

    @property
    def yolo_stem(self) -> str:
        """The image file's own stem: YOLO finds ``labels/STEM.txt`` for ``images/STEM.ext``."""
        stem = Path(self.file_name).stem
        return stem if stem.strip(". ") else self.name

    def empty_objects(self) -> int:
        """Objects whose mask has no pixel: every export leaves them out (COCO, YOLO and PNG alike)."""
        return sum(1 for o in self.objects if o.mask is not None and not o.mask.any())

    def to_json(self) -> dict:
        """The prompts JSON schema, one entry per object (accepted proposals have no prompt),
        plus each object's ``score`` and ``accepted_mask`` (COCO RLE)."""
        empty = {"points": [], "labels": [], "box": None, "mask": None}
        objects = []
        for o in self.objects:
            p = o.prompt()
            objects.append({**(p.to_dict() if p is not None else empty), "label": o.label, "score": o.score,
                            "edited": o.edited, "accepted_mask": o.rle(),
                            **({"hidden": True} if o.hidden else {}), **({"locked": True} if o.locked else {}),
                            **{k: getattr(o, k) for k in WHO if getattr(o, k) is not None}})
        return {"version": SCHEMA_VERSION, "image": self.name, "file_name": self.file_name, "source": self.source,
                "revision": self.revision, "done": self.done, "image_size": list(self.size), "objects": objects}

    def save(self, folder: str | Path) -> Path:
        """Write the annotation state (atomically) to ``folder/KEY.annotation.json`` as the next revision.

        Raises :class:`StaleSaveError`, writing nothing, when the file holds a newer revision than the
        one this annotation was loaded from (another tab saved the image meanwhile).
        """
        path = Path(folder) / f"{self.name}.annotation.json"
        with _SAVE_LOCK:
            on_disk = saved_revision(path)
            if on_disk > self.revision:
                raise StaleSaveError(f"{self.file_name} was saved from another tab meanwhile (revision {on_disk}); "
                                     "reopen the image to see its objects: your last change was not saved")
            self.revision = on_disk + 1
            written = atomic_write_text(path, json.dumps(self.to_json()))
            self.mark_saved()
            return written

    def save_copy(self, folder: str | Path) -> Path:
        """Write this annotation, as it is, to ``folder/KEY.copy-N.annotation.json`` (N: the first free number):
        where objects go that could not be saved over another tab's."""
        folder = Path(folder)
        n = 1
        while (folder / f"{self.name}.copy-{n}.annotation.json").exists():
            n += 1
        return atomic_write_text(folder / f"{self.name}.copy-{n}.annotation.json", json.dumps(self.to_json()))

    def load(self, folder: str | Path) -> bool:
        """Resume from ``folder/KEY.annotation.json`` if it exists; returns whether it did."""
        path = Path(folder) / f"{self.name}.annotation.json"
        if not path.exists():
            return False
        with _SAVE_LOCK:
            _, size, objects = read_saved(path)
            if tuple(size) != tuple(self.size):
                raise SampromptError(f"{path.name} is for an image of {size[1]}x{size[0]}, not this "
                                     f"{self.size[1]}x{self.size[0]} {self.file_name}; move it away to start anew")
            self.objects = objects
            self.revision = saved_revision(path)
            self.done = bool(json.loads(path.read_text()).get("done", False))
            self.mark_saved()
        self.current = len(self.objects) - 1 if self.objects else None
        return True

    def export(self, folder: str | Path, formats: Sequence[str] = ("png", "coco", "yolo"),
               categories: Sequence[str] = ("object",)) -> list[Path]:
        """Write this image's masks in the given formats, plus the state JSON for replay."""
        folder = Path(folder)
        kept = [o for o in self.objects if o.mask is not None and o.mask.any()]  # empty masks: in no format
        masks = np.stack([o.mask for o in kept]) if kept else np.zeros((0, *self.size), bool)
        labels = [o.label for o in kept]
        written = [self.save(folder)]
        if "png" in formats:
            written += export_png(folder, self.name, self.image, masks)
        cats = list(dict.fromkeys([*categories, *labels]))
        who = [{k: getattr(o, k) for k in WHO if getattr(o, k) is not None} for o in kept]
        if "yolo" in formats:  # named as YOLO pairs labels with images: images/NAME.ext -> labels/NAME.txt
            written.append(export_yolo(folder / "labels" / f"{self.yolo_stem}.txt", masks,
                                       [cats.index(c) for c in labels], who=who))
            if any(who):
                written.append(written[-1].with_suffix(".who.json"))
        if "coco" in formats:
            coco = CocoWriter(cats)
            coco.add_image(self.file_name, masks, labels=labels,  # the image's own name, as tools pair them
                           attributes=who if any(who) else None)
            written.append(coco.write(folder / f"{self.name}.coco.json"))
        return written
