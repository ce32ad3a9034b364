"""Annotating a CT or MR volume slice by slice in the annotator, with propagation through the volume.

A :class:`VolumeAnnotation` reads a NIfTI file or a DICOM series with the
medical adapter (:func:`~samprompt.domains.medical.volume.load_volume`, RAS
grid), windows it (``auto``, a CT preset or MR percentiles) and shows axial
slices as the medical adapter sees them (columns x, rows y of the RAS grid,
square pixels). The slice on screen is an ordinary
:class:`~samprompt.annotate.document.ImageAnnotation`, so points, boxes, brush,
polygons and undo work as on photos; each edit is written back into the
object's 3D mask. :meth:`VolumeAnnotation.propagate` follows the selected object
from its prompt on this slice up and down the volume with the medical
adapter's propagation; any slice can then be checked and corrected.
:meth:`VolumeAnnotation.export` writes the label volume as NIfTI on the scan's
own grid (its affine and qform/sform codes), with a JSON naming each label.

State is saved as ``KEY.volume.npz`` (per object its box on the RAS grid and
its bits inside it, compressed) and
``KEY.volume.json`` (classes, window, slice, revision), so a restart resumes.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from .document import WHO, AnnotatedObject, ImageAnnotation
from .layered import LayeredDocument
from ..errors import SampromptError
from ..io import atomic_write_text

WINDOWS = ("auto", "soft", "lung", "bone", "brain", "liver", "mr")
PLANES = {"axial": 2, "coronal": 1, "sagittal": 0}  # the RAS axis each plane cuts across
_AXIS_LETTER = "xyz"
# The patient's direction at each edge of the canvas (left, right, top, bottom) as slices are drawn: columns
# along the RAS grid's first remaining axis, rows along the second, turned so that anterior or superior is up.
# The page mirrors left and right for the radiological convention (the patient's right on the screen's left).
EDGES = {"axial": "LRAP", "coronal": "LRSI", "sagittal": "PASI"}
FLAGS = ("hidden", "locked", *WHO)  # what an object keeps across slices and saves besides its label and voxels


class VolumeAnnotation(LayeredDocument):
    """Objects of one volume: a class and a 3D mask each; one slice open at a time as ``ann``."""

    kind = "volume"

    def __init__(self, segmenter, path: str | Path, key: str, window: str = "auto", axis: int = 2) -> None:
        from ..domains.medical.volume import load_volume

        self.seg = segmenter
        self.vol = load_volume(path)
        self.path = Path(path)
        self.name = key
        self.file_name = self.path.name
        self.axis = axis
        self.labels: dict[int, str] = {}  # uid -> class
        self.masks: dict[int, np.ndarray] = {}  # uid -> (X, Y, Z) bool on the RAS grid
        self.order: list[int] = []  # uids in object order (label value = place + 1)
        self.flags: dict[int, dict] = {}  # uid -> hidden, locked and who made / edited it: the same on every slice
        self._trash: dict[int, tuple[str, np.ndarray]] = {}  # deleted objects, for undo
        self._next_uid = 1
        self.revision = 0
        self.done = False
        self._dirty = False  # changed since the last save or load (besides the open slice's own edits)
        self.window = window
        self.window_note = ""
        self._set_window(window)
        self.k = self.view.n // 2
        self.ann: ImageAnnotation = self._slice(self.k)

    # ----------------------------------------------------------- the view
    def _set_window(self, name: str) -> None:
        from ..domains.medical.intensity import choose_window
        from ..domains.medical.propagate import SliceView

        win, self.window_note = choose_window(self.vol.data, name, self.vol.modality)
        self.window = name
        self.view = SliceView(win(self.vol.data), self.vol.spacing, self.axis, self.vol.data)

    def _slice_mask(self, uid: int, k: int) -> np.ndarray:
        return np.ascontiguousarray(self.view.to_scaled(np.take(self.masks[uid], k, axis=self.axis).T))

    def _slice(self, k: int) -> ImageAnnotation:
        ann = ImageAnnotation(self.seg, self.view.image(k), f"{self.file_name} slice {k}",
                              key=f"{self.name}-{_AXIS_LETTER[self.axis]}{k}")
        for uid in self.order:
            m = self._slice_mask(uid, k)
            ann.objects.append(AnnotatedObject(label=self.labels[uid], mask=m if m.any() else None, uid=uid,
                                               **self.flags.get(uid, {})))
        ann.current = len(ann.objects) - 1 if ann.objects else None
        return ann

    def _reopen(self, k: int | None, change=None) -> ImageAnnotation:
        """Write the open slice back, apply ``change`` (a new window or plane), open slice ``k`` (clipped;
        None: the middle one), keeping the selected object."""
        self.store()
        self._dirty |= self.ann.dirty()
        current = self.ann.objects[self.ann.current].uid if self.ann.current is not None else None
        if change is not None:
            change()
        self.k = self.view.n // 2 if k is None else int(np.clip(k, 0, self.view.n - 1))
        self.ann = self._slice(self.k)
        if current in self.order:
            self.ann.current = self.order.index(current)
        return self.ann

    def open_slice(self, k: int) -> ImageAnnotation:
        """Write the open slice back and open slice ``k`` (clipped to the volume), keeping the selection."""
        return self._reopen(k)

    def set_window(self, name: str) -> ImageAnnotation:
        """Show the volume through another window (a CT preset, ``mr`` or ``auto``)."""
        if name not in WINDOWS:
            raise SampromptError(f"unknown window {name!r}; choose one of {', '.join(WINDOWS)}")
        return self._reopen(self.k, lambda: self._set_window(name))

    @property
    def plane(self) -> str:
        return next(name for name, a in PLANES.items() if a == self.axis)

    def set_plane(self, name: str) -> ImageAnnotation:
        """Cut the volume the other way (axial, coronal or sagittal): through the selected object's centre,
        so it stays in view, else on the middle slice of that axis."""
        if name not in PLANES:
            raise SampromptError(f"unknown plane {name!r}; choose one of {', '.join(PLANES)}")
        self.store()
        k = None
        if self.ann.current is not None:
            uid = self.ann.objects[self.ann.current].uid
            mask = self.masks.get(uid)
            if mask is not None and mask.any():
                k = int(round(float(np.nonzero(mask)[PLANES[name]].mean())))

        def cut() -> None:
            self.axis = PLANES[name]
            self._set_window(self.window)

        return self._reopen(k, cut)

    # --------------------------------------------------------- slice <-> 3D
    def store(self) -> None:
        """Write the open slice's objects into their 3D masks (new objects get one, deleted ones go)."""
        ann = self.ann
        present = []
        for o in ann.objects:
            if o.uid is None:
                o.uid, self._next_uid = self._next_uid, self._next_uid + 1
            if o.uid not in self.masks:
                self.masks[o.uid] = self._trash.pop(o.uid, (o.label, np.zeros(self.vol.shape, bool)))[1]
            self.labels[o.uid] = o.label
            self.flags[o.uid] = {k: getattr(o, k) for k in FLAGS if getattr(o, k)}
            m = o.mask if o.mask is not None else np.zeros(ann.size, bool)
            self.view.put(self.masks[o.uid], self.k, self.view.to_native(m))
            present.append(o.uid)
        for uid in [u for u in self.order if u not in present]:
            self._trash[uid] = (self.labels.pop(uid), self.masks.pop(uid))
        self.order = present

    def covered(self, uid: int) -> tuple[int, int] | None:
        """The first and last slice where object ``uid`` has voxels."""
        ks = np.nonzero(self.masks[uid].any(axis=tuple(a for a in range(3) if a != self.axis)))[0]
        return (int(ks.min()), int(ks.max())) if len(ks) else None

    # ------------------------------------------------------------ propagate
    def propagate(self, settings=None) -> str:
        """Follow the selected object from this slice through the volume; its other slices are replaced."""
        from ..domains.medical.propagate import propagate_object

        obj, prompt = self._start()
        self.store()
        masks = propagate_object(self.seg, self.view, self.k, prompt, settings)
        uid = obj.uid
        vol = self.masks[uid]
        key_slice = np.take(vol, self.k, axis=self.axis).copy()
        vol[...] = False
        for k, m in masks.items():
            self.view.put(vol, k, m)
        idx = [slice(None)] * 3
        idx[self.axis] = self.k
        vol[tuple(idx)] = key_slice  # this slice stays as the user made it
        self._dirty = True
        span = self.covered(uid)
        return f"propagated {obj.label} through slices {span[0]}-{span[1]}" if span else "propagation found nothing"

    # ----------------------------------------------------- labels and files
    def label_volume(self) -> np.ndarray:
        """(X, Y, Z) labels on the RAS grid: object i is i + 1; smaller objects stay on top of larger ones."""
        self.store()
        labels = np.zeros(self.vol.shape, np.uint16 if len(self.order) > 255 else np.uint8)
        for i in sorted(range(len(self.order)), key=lambda i: -int(self.masks[self.order[i]].sum())):
            labels[self.masks[self.order[i]]] = i + 1
        return labels

    def classes(self) -> dict[str, str]:
        return {str(i + 1): self.labels[uid] for i, uid in enumerate(self.order)}

    def export_labels(self, values: dict[str, int] | None = None) -> tuple[np.ndarray, dict[str, str]]:
        """(the label volume, {value: class}) for export: object i is i + 1, or with ``values`` (a labels file's
        class -> value) each object of a class the file names gets that value and the rest the next free ones."""
        labels = self.label_volume()
        if not values:
            return labels, self.classes()
        out = np.zeros(labels.shape, np.uint16)
        names: dict[str, str] = {}
        free = max(values.values(), default=0) + 1
        for i, uid in enumerate(self.order):
            cls = self.labels[uid]
            if cls in values:
                value = values[cls]
            else:
                value, free = free, free + 1
            out[labels == i + 1] = value
            names[str(value)] = cls
        return out.astype(np.uint8 if out.max(initial=0) < 256 else np.uint16), names

    def _arrays(self) -> dict:
        out = {}
        for i, uid in enumerate(self.order):
            out[f"box_{i}"], out[f"bits_{i}"] = _pack(self.masks[uid])
        return out

    def _fields(self) -> dict:
        return {"shape": list(self.vol.shape), "window": self.window, "classes": self.classes()}

    def load(self, folder: str | Path) -> bool:
        """Resume from the saved state, if any; returns whether it did."""
        meta, arrays = self._state_paths(Path(folder))
        if not meta.exists() or not arrays.exists():
            return False
        doc = json.loads(meta.read_text())
        if tuple(doc.get("shape", ())) != self.vol.shape:
            raise SampromptError(f"{meta.name} is for a volume of shape {doc.get('shape')}, not {self.vol.shape}; "
                                 "move it away to start anew")
        self.order, self.labels, self.masks, self.flags = [], {}, {}, {}
        with np.load(arrays) as z:
            for value, label in sorted(doc.get("classes", {}).items(), key=lambda kv: int(kv[0])):
                i = int(value) - 1
                uid, self._next_uid = self._next_uid, self._next_uid + 1
                self.order.append(uid)
                self.labels[uid], self.masks[uid] = label, _unpack(z[f"box_{i}"], z[f"bits_{i}"], self.vol.shape)
                saved = (doc.get("objects") or {}).get(value) or {}
                self.flags[uid] = {k: v for k, v in saved.items() if k in FLAGS}
        self.revision = int(doc.get("revision", 0))
        self.done = bool(doc.get("done", False))
        if doc.get("window") in WINDOWS and doc["window"] != self.window:
            self._set_window(doc["window"])
        self.k = int(np.clip(doc.get("slice", self.k), 0, self.view.n - 1))
        self.ann = self._slice(self.k)
        return True

    def export_paths(self, folder: str | Path) -> list[Path]:
        """The files :meth:`export` writes into ``folder``."""
        seg = [Path(folder) / f"{self.name}_seg.dcm"] if self.vol.series is not None else []
        return [Path(folder) / f"{self.name}_seg.nii.gz", Path(folder) / f"{self.name}_seg.json", *seg]

    def export(self, folder: str | Path) -> list[Path]:
        """``NAME_seg.nii.gz`` on the scan's grid and ``NAME_seg.json`` ({label value: class}); for a DICOM series
        also ``NAME_seg.dcm``, a DICOM SEG of it (named segments), when any object has voxels."""
        from ..domains.medical.volume import save_segmentation

        folder = Path(folder)
        labels, classes = self.export_labels(getattr(self, "label_values", None))
        nii = save_segmentation(folder / f"{self.name}_seg.nii.gz", labels, self.vol)
        names = atomic_write_text(folder / f"{self.name}_seg.json",
                                  json.dumps({"labels": classes, "source": self.file_name}, indent=1) + "\n")
        written = [self.save(folder), nii, names]
        if self.vol.series is not None and labels.any():
            from ..domains.medical.dicom_seg import write_dicom_seg

            sources = [None if k in self.vol.missing else "" for k in range(self.vol.file_shape[2])]
            written.append(write_dicom_seg(folder / f"{self.name}_seg.dcm", self.vol.to_file_order(labels),
                                           self.vol.series, {int(k): v for k, v in classes.items()},
                                           self.seg.model_id, sources))
        return written

    def summary(self) -> dict:
        """What the canvas shows about the volume: slice, count, window, the selected object's slices."""
        uid = self.ann.objects[self.ann.current].uid if self.ann.current is not None else None
        span = self.covered(uid) if uid in self.masks else None
        return {"k": self.k, "n": self.view.n, "window": self.window, "windows": list(WINDOWS),
                "plane": self.plane, "planes": list(PLANES),
                "covered": f"slices {span[0]}-{span[1]}" if span else "",
                "edges": EDGES[self.plane], "lr": self.plane != "sagittal"}


def _pack(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 3D mask as its box (lo, hi) and its bits inside the box, zlib-compressed (fast, level 1)."""
    xy = mask.any(axis=2)
    xs, ys = np.flatnonzero(xy.any(axis=1)), np.flatnonzero(xy.any(axis=0))
    if not len(xs):
        return np.zeros(6, np.int64), np.zeros(0, np.uint8)
    x0, x1, y0, y1 = xs[0], xs[-1] + 1, ys[0], ys[-1] + 1
    zs = np.flatnonzero(mask[x0:x1, y0:y1].any(axis=(0, 1)))
    box = np.array([x0, y0, zs[0], x1, y1, zs[-1] + 1], np.int64)
    crop = mask[x0:x1, y0:y1, box[2]:box[5]]
    return box, np.frombuffer(zlib.compress(np.packbits(crop).tobytes(), 1), np.uint8)


def _unpack(box: np.ndarray, bits: np.ndarray, shape) -> np.ndarray:
    out = np.zeros(shape, bool)
    if not bits.size:
        return out
    x0, y0, z0, x1, y1, z1 = (int(v) for v in box)
    n = (x1 - x0) * (y1 - y0) * (z1 - z0)
    crop = np.unpackbits(np.frombuffer(zlib.decompress(bits.tobytes()), np.uint8), count=n)
    out[x0:x1, y0:y1, z0:z1] = crop.reshape(x1 - x0, y1 - y0, z1 - z0).astype(bool)
    return out
