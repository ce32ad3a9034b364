"""Annotating a video frame by frame in the annotator, with propagation forward and backward.

A video is a file OpenCV reads (``.mp4``, ``.avi``, ``.mov``, ``.mkv``, ``.webm``) or a folder
of frame images (named so that they sort in order). :class:`VideoFrames` decodes a frame
when it is asked for and keeps the last few, so a ten-minute 1080p video is never read
whole: scrolling to frame k seeks there, and propagation reads the frames it walks.

:class:`VideoAnnotation` works like a volume in the app (the same slider, keys and
propagate button; its objects keep a mask on the frames they were made or followed on).
:meth:`VideoAnnotation.propagate` follows the selected object from the open frame
forward and backward with the shared propagators (:mod:`samprompt.domains.propagation`):
SAM 2's memory when a SAM 2 model is loaded, else box propagation with the video
settings; any frame can then be corrected. Export writes a label PNG per annotated frame
(``KEY_frames/FRAME.png``) and a COCO file whose images carry ``video_id`` and
``frame_id`` and whose annotations carry the object's ``track_id``.

State is saved as ``KEY.video.json`` (classes, frame, revision) and ``KEY.video.npz`` (per
object and frame, its box and bits, compressed), so a restart resumes.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import ImageError, PromptError, SampromptError
from .document import WHO, AnnotatedObject, ImageAnnotation
from .layered import LayeredDocument

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
FLAGS = ("hidden", "locked", *WHO)


def is_video(path: Path) -> bool:
    """A video file, or a folder whose files are all frame images (at least two, the first and the last of one
    size by their headers: a folder of unrelated photos is not a video; no DICOM)."""
    from ..images import IMAGE_SUFFIXES

    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in VIDEO_SUFFIXES
    if not path.is_dir():
        return False
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if len(files) < 2 or not all(p.suffix.lower() in IMAGE_SUFFIXES for p in files):
        return False
    from PIL import Image

    try:
        with Image.open(files[0]) as a, Image.open(files[-1]) as b:  # headers only: no pixels decoded
            return a.size == b.size
    except (OSError, ValueError, Image.DecompressionBombError):  # PIL cannot read it: not taken as frames
        return False


class VideoFrames:
    """The frames of a video file or a folder of frames, as RGB uint8, decoded on demand (``keep`` kept)."""

    def __init__(self, path: str | Path, keep: int = 8) -> None:
        import cv2

        self.path = Path(path)
        self.keep = keep
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.decoded = 0  # frames decoded so far (the laziness is tested by it)
        if self.path.is_dir():
            from ..images import IMAGE_SUFFIXES

            self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            self.cap, self.n, self.fps = None, len(self.files), None
        else:
            self.files = None
            self.cap = cv2.VideoCapture(str(self.path))
            if not self.cap.isOpened():
                raise ImageError(f"{self.path.name}: OpenCV cannot open this video")
            self.n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.fps = float(self.cap.get(cv2.CAP_PROP_FPS)) or None
            self._next = 0  # the frame the capture reads next
        if self.n < 1:
            raise ImageError(f"{self.path.name} has no frames")
        first = self.image(0)
        self.size = first.shape[:2]

    def _decode(self, k: int) -> np.ndarray:
        import cv2

        if self.files is not None:
            from ..images import to_rgb_uint8

            rgb = to_rgb_uint8(str(self.files[k]))
        else:
            if k != self._next:  # a seek; reading on from the last frame is the fast path
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, k)
            ok, bgr = self.cap.read()
            self._next = k + 1
            if not ok:
                raise ImageError(f"{self.path.name}: frame {k} cannot be decoded (of {self.n} the file declares)")
            rgb = np.ascontiguousarray(bgr[..., ::-1])
        self.decoded += 1
        return rgb

    def image(self, k: int) -> np.ndarray:
        if not 0 <= k < self.n:
            raise PromptError(f"frame {k} is out of range (0 to {self.n - 1})")
        with self._lock:
            if k in self._cache:
                self._cache.move_to_end(k)
                return self._cache[k]
            rgb = self._decode(k)
            if hasattr(self, "size") and rgb.shape[:2] != self.size:
                raise ImageError(f"{self.path.name}: frame {k} is {rgb.shape[1]}x{rgb.shape[0]}, the first "
                                 f"{self.size[1]}x{self.size[0]}")
            self._cache[k] = rgb
            while len(self._cache) > self.keep:
                self._cache.popitem(last=False)
            return rgb

    def values(self, k: int) -> np.ndarray:
        import cv2

        return cv2.cvtColor(self.image(k), cv2.COLOR_RGB2GRAY)

    def to_native(self, mask: np.ndarray) -> np.ndarray:
        return mask

    def to_scaled(self, mask: np.ndarray) -> np.ndarray:
        return mask

    def frame_name(self, k: int) -> str:
        """The frame's own file name (a folder of frames), else ``VIDEO/FRAME.png`` as an extractor names it."""
        return self.files[k].name if self.files is not None else f"{self.path.stem}/{k:06d}.png"


class FrameWindow:
    """Frames ``lo``..``hi`` of another frame source, numbered from 0 (what one propagation may walk)."""

    def __init__(self, frames, lo: int, hi: int) -> None:
        self.frames, self.lo = frames, lo
        self.n = hi - lo + 1
        self.size = frames.size

    def image(self, k: int) -> np.ndarray:
        return self.frames.image(self.lo + k)

    def values(self, k: int) -> np.ndarray:
        return self.frames.values(self.lo + k)

    def to_native(self, mask: np.ndarray) -> np.ndarray:
        return mask

    def to_scaled(self, mask: np.ndarray) -> np.ndarray:
        return mask


class VideoAnnotation(LayeredDocument):
    """Objects of one video: a class each and a mask on each frame it is on; one frame open as ``ann``."""

    kind = "video"
    layer = "frame"
    flip_y = False  # frames are shown as they are (a volume's slices are turned anterior-up)
    span = 150  # frames one propagation walks each way (about 5 s of video at 30 fps)

    def __init__(self, segmenter, path: str | Path, key: str) -> None:
        self.seg = segmenter
        self.path = Path(path)
        self.view = VideoFrames(self.path)
        self.name = key
        self.file_name = self.path.name
        self.labels: dict[int, str] = {}
        self.frames: dict[int, dict[int, np.ndarray]] = {}  # uid -> frame -> (H, W) bool
        self.order: list[int] = []
        self.flags: dict[int, dict] = {}
        self._next_uid = 1
        self.revision = 0
        self.done = False
        self._dirty = False
        self.window = ""
        h, w = self.view.size
        self.window_note = f"{self.view.n} frames of {w}x{h}" + (f" at {self.view.fps:g} fps" if self.view.fps else "")
        self.k = 0
        self.ann = self._frame(0)

    # ------------------------------------------------------------ frames
    def _frame(self, k: int) -> ImageAnnotation:
        ann = ImageAnnotation(self.seg, self.view.image(k), f"{self.file_name} frame {k}", key=f"{self.name}-f{k}")
        for uid in self.order:
            m = self.frames[uid].get(k)
            ann.objects.append(AnnotatedObject(label=self.labels[uid], mask=m if m is not None and m.any() else None,
                                               uid=uid, **self.flags.get(uid, {})))
        ann.current = len(ann.objects) - 1 if ann.objects else None
        return ann

    def open_slice(self, k: int) -> ImageAnnotation:
        """Write the open frame back and open frame ``k`` (clipped), keeping the selected object."""
        self.store()
        self._dirty |= self.ann.dirty()
        current = self.ann.objects[self.ann.current].uid if self.ann.current is not None else None
        self.k = int(np.clip(k, 0, self.view.n - 1))
        self.ann = self._frame(self.k)
        if current in self.order:
            self.ann.current = self.order.index(current)
        return self.ann

    def set_window(self, name: str) -> ImageAnnotation:
        raise SampromptError("a video has no intensity windows")

    def set_plane(self, name: str) -> ImageAnnotation:
        raise SampromptError("a video is cut in frames only")

    def store(self) -> None:
        """Write the open frame's objects back (new objects get a track, deleted ones go)."""
        present = []
        for o in self.ann.objects:
            if o.uid is None:
                o.uid, self._next_uid = self._next_uid, self._next_uid + 1
            frames = self.frames.setdefault(o.uid, {})
            self.labels[o.uid] = o.label
            self.flags[o.uid] = {k: getattr(o, k) for k in FLAGS if getattr(o, k)}
            if o.mask is not None and o.mask.any():
                frames[self.k] = o.mask.copy()
            else:
                frames.pop(self.k, None)
            present.append(o.uid)
        for uid in [u for u in self.order if u not in present]:
            self.frames.pop(uid, None)
            self.labels.pop(uid, None)
        self.order = present

    def covered(self, uid: int) -> tuple[int, int] | None:
        ks = sorted(self.frames.get(uid, {}))
        return (ks[0], ks[-1]) if ks else None

    def propagate(self, settings=None) -> str:
        """Follow the selected object from this frame forward and backward; its other frames are replaced."""
        from ..domains.propagation import PropagationSettings, follow

        obj, prompt = self._start()
        self.store()
        lo, hi = max(0, self.k - self.span), min(self.view.n - 1, self.k + self.span)
        window = FrameWindow(self.view, lo, hi)  # memory propagation reads every frame it is given
        masks = follow(self.seg, window, self.k - lo, prompt, settings or PropagationSettings.video())
        frames = self.frames[obj.uid]
        key = frames[self.k]
        for k in range(lo, hi + 1):  # the walked frames are replaced; frames beyond them are kept
            frames.pop(k, None)
        frames.update({lo + k: m for k, m in masks.items() if m.any()})
        frames[self.k] = key  # this frame stays as the user made it
        self._dirty = True
        reached = sorted(lo + k for k, m in masks.items() if m.any()) or [self.k]
        cut = (reached[0] == lo > 0) or (reached[-1] == hi < self.view.n - 1)
        more = f" (at most {self.span} frames each way: propagate again from the last one to go on)" if cut else ""
        return f"propagated {obj.label} through frames {reached[0]}-{reached[-1]}{more}"

    # ------------------------------------------------------------ files
    def _arrays(self) -> dict:
        out = {}
        for i, uid in enumerate(self.order):
            for k, m in self.frames[uid].items():
                out[f"box_{i}_{k}"], out[f"bits_{i}_{k}"] = _pack(m)
        return out

    def _fields(self) -> dict:
        return {"frames": self.view.n, "size": list(self.view.size),
                "classes": {str(i + 1): self.labels[uid] for i, uid in enumerate(self.order)}}

    def load(self, folder: str | Path) -> bool:
        """Resume from the saved state, if any; returns whether it did."""
        meta, arrays = self._state_paths(Path(folder))
        if not meta.exists() or not arrays.exists():
            return False
        doc = json.loads(meta.read_text())
        if tuple(doc.get("size", ())) != tuple(self.view.size):
            raise SampromptError(f"{meta.name} is for frames of {doc.get('size')}, not {list(self.view.size)}; "
                                 "move it away to start anew")
        self.order, self.labels, self.frames, self.flags = [], {}, {}, {}
        with np.load(arrays) as z:
            keys = list(z.keys())
            for value, label in sorted(doc.get("classes", {}).items(), key=lambda kv: int(kv[0])):
                i = int(value) - 1
                uid, self._next_uid = self._next_uid, self._next_uid + 1
                self.order.append(uid)
                self.labels[uid] = label
                self.frames[uid] = {int(n.rsplit("_", 1)[1]): _unpack(z[n], z[n.replace("box_", "bits_", 1)],
                                                                      self.view.size)
                                    for n in keys if n.startswith(f"box_{i}_")}
                saved = (doc.get("objects") or {}).get(value) or {}
                self.flags[uid] = {k: v for k, v in saved.items() if k in FLAGS}
        self.revision = int(doc.get("revision", 0))
        self.done = bool(doc.get("done", False))
        self.k = int(np.clip(doc.get("slice", 0), 0, self.view.n - 1))
        self.ann = self._frame(self.k)
        return True

    def annotated_frames(self) -> list[int]:
        self.store()
        return sorted({k for uid in self.order for k in self.frames[uid]})

    def export_paths(self, folder: str | Path) -> list[Path]:
        folder = Path(folder)
        return [folder / f"{self.name}.coco.json",
                *(folder / f"{self.name}_frames" / f"{k:06d}.png" for k in self.annotated_frames())]

    def export(self, folder: str | Path) -> list[Path]:
        """A label PNG per annotated frame (object i is i + 1; smaller objects on top) and a COCO file with
        ``videos``, images with ``video_id`` and ``frame_id``, annotations with ``track_id`` and who made them."""
        from ..export import CocoWriter
        from ..io import write_image

        folder = Path(folder)
        frames = self.annotated_frames()
        classes = list(dict.fromkeys(self.labels[u] for u in self.order)) or ["object"]
        coco = CocoWriter(classes)
        written = [self.save(folder)]
        h, w = self.view.size
        for k in frames:
            on = [(i, uid) for i, uid in enumerate(self.order) if k in self.frames[uid]]
            labels = np.zeros((h, w), np.uint16 if len(self.order) > 255 else np.uint8)
            for i, uid in sorted(on, key=lambda t: -int(self.frames[t[1]][k].sum())):
                labels[self.frames[uid][k]] = i + 1
            written.append(write_image(folder / f"{self.name}_frames" / f"{k:06d}.png", labels))
            masks = np.stack([self.frames[uid][k] for _, uid in on])
            who = [{f: v for f, v in self.flags.get(uid, {}).items() if f in WHO} for _, uid in on]
            coco.add_image(self.view.frame_name(k), masks, labels=[self.labels[uid] for _, uid in on],
                           height=h, width=w, attributes=who if any(who) else None)
            coco.images[-1].update(video_id=1, frame_id=k)
            for ann, (i, _) in zip(coco.annotations[-len(on):], on):
                ann["track_id"] = i + 1
        coco.extra = {"videos": [{"id": 1, "name": self.file_name, "width": w, "height": h, "length": self.view.n,
                                  **({"fps": self.view.fps} if self.view.fps else {})}]}
        written.append(coco.write(folder / f"{self.name}.coco.json", overwrite=True))
        return written

    def summary(self) -> dict:
        """What the canvas shows: frame, count, the selected object's frames (no windows or planes)."""
        uid = self.ann.objects[self.ann.current].uid if self.ann.current is not None else None
        span = self.covered(uid) if uid in self.frames else None
        return {"k": self.k, "n": self.view.n, "unit": "frame", "window": "", "windows": [], "plane": "",
                "planes": [], "covered": f"frames {span[0]}-{span[1]}" if span else "", "edges": "", "lr": False}


def _pack(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return np.zeros(4, np.int64), np.zeros(0, np.uint8)
    box = np.array([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1], np.int64)
    crop = mask[box[0]:box[2], box[1]:box[3]]
    return box, np.frombuffer(zlib.compress(np.packbits(crop).tobytes(), 1), np.uint8)


def _unpack(box: np.ndarray, bits: np.ndarray, size) -> np.ndarray:
    out = np.zeros(size, bool)
    if not bits.size:
        return out
    y0, x0, y1, x1 = (int(v) for v in box)
    crop = np.unpackbits(np.frombuffer(zlib.decompress(bits.tobytes()), np.uint8), count=(y1 - y0) * (x1 - x0))
    out[y0:y1, x0:x1] = crop.reshape(y1 - y0, x1 - x0).astype(bool)
    return out


__all__ = ["VIDEO_SUFFIXES", "FrameWindow", "VideoAnnotation", "VideoFrames", "is_video"]
