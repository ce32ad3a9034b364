"""What the browser canvas draws: the image once, then only the masks and vectors per edit.

:func:`view_payload` turns an :class:`~samprompt.annotate.document.ImageAnnotation`
into a small JSON document for ``canvas.js``: the image as a data URL (only
when a new image or slice is shown); the masks as one run-length-coded label
map with a colour per label (:func:`label_runs`: objects in shades of their
class colour (:func:`instance_colours`), hidden ones left out, the selected one
stronger and on top, the current segment-everything proposal in white); per object its class, colour, points and box; and the selected
object's polygons, for its outline and for vertex editing. The browser paints
the runs into an overlay and outlines every object itself. Sending the masks
alone keeps a click's reply to a few kilobytes and the picture on screen while
it is computed (no flash).
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import cv2
import numpy as np

from ..masks import colour

FILL_ALPHA = 100  # of 255, for objects
SELECTED_ALPHA = 150
PROPOSAL_ALPHA = 150


def class_colour(classes: list[str], label: str) -> tuple[int, int, int]:
    """A class's RGB colour: fixed by its place in the folder's class list."""
    k = classes.index(label) if label in classes else len(classes) + zlib.crc32(label.encode()) % 7
    return colour(k)


def hex_colour(classes: list[str], label: str) -> str:
    return _hex(class_colour(classes, label))


def _hex(rgb) -> str:
    r, g, b = rgb
    return f"#{r:02x}{g:02x}{b:02x}"


def instance_colours(objects, classes: list[str]) -> list[tuple[int, int, int]]:
    """Each object's colour: its class colour for the first of its class on the image, then lighter and
    darker shades of it in turn (further each round), so that touching objects of a class are told apart."""
    seen: dict[str, int] = {}
    out = []
    for o in objects:
        nth = seen[o.label] = seen.get(o.label, -1) + 1
        base = np.array(class_colour(classes, o.label), float)
        f = min(0.75, 0.3 * ((nth + 1) // 2))
        shade = base if nth == 0 else base + (255 - base) * f if nth % 2 else base * (1 - f)
        out.append(tuple(int(round(v)) for v in shade))
    return out


def data_url(rgb_or_rgba: np.ndarray, fmt: str = ".png") -> str:
    """An (H, W, 3|4) uint8 RGB(A) array as a base64 data URL (fast PNG compression, or JPEG)."""
    arr = np.ascontiguousarray(rgb_or_rgba)
    bgr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1] if fmt == ".png" else [cv2.IMWRITE_JPEG_QUALITY, 92]
    ok, buf = cv2.imencode(fmt, bgr, params)
    if not ok:
        raise ValueError("could not encode the picture")
    mime = "image/png" if fmt == ".png" else "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(buf.tobytes()).decode("ascii")


#: the longest side of the picture and mask overlay sent to the page; larger images are shown
#: through a copy of this size, while SAM, the masks and the exports keep every pixel
DISPLAY_SIDE = 2048


def display_size(h: int, w: int) -> tuple[int, int]:
    """(h, w) of the copy the page draws: the image itself up to :data:`DISPLAY_SIDE` a side."""
    f = min(1.0, DISPLAY_SIDE / max(h, w))
    return max(1, round(h * f)), max(1, round(w * f))


def label_runs(ann, classes: list[str], proposal: int | None = 0) -> dict[str, Any]:
    """The masks as one label map, run-length coded for the browser, and the colour of each label.

    Objects are painted in order, the selected one last (on top), then proposal ``proposal`` (if any).
    ``values``/``lengths``: the runs of the row-major label map at ``w`` x ``h`` (the display size:
    :func:`display_size`); ``palette``: label -> [r, g, b, a]."""
    h, w = ann.size
    n = len(ann.objects)
    labels = np.zeros((h, w), np.uint8 if n + 2 < 256 else np.uint16)
    palette: dict[str, list[int]] = {}  # JSON keys are strings
    order = [i for i in range(n) if i != ann.current] + ([ann.current] if ann.current is not None else [])
    shades = instance_colours(ann.objects, classes)
    for i in order:
        o = ann.objects[i]
        if o.mask is not None and not o.hidden:
            labels[o.mask] = i + 1
            alpha = SELECTED_ALPHA if i == ann.current else FILL_ALPHA
            palette[str(i + 1)] = [*shades[i], alpha]
    if proposal is not None and ann.proposals and proposal < len(ann.proposals):
        labels[ann.proposals[proposal]] = n + 1
        palette[str(n + 1)] = [255, 255, 255, PROPOSAL_ALPHA]  # white: no class colour is white
    dh, dw = display_size(h, w)
    if (dh, dw) != (h, w):
        labels = cv2.resize(labels, (dw, dh), interpolation=cv2.INTER_NEAREST)
    flat = labels.ravel()
    starts = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1])
    lengths = np.diff(np.append(starts, flat.size))
    return {"values": flat[starts].tolist(), "lengths": lengths.tolist(), "palette": palette, "w": dw, "h": dh}


def _box(mask: np.ndarray) -> list[int] | None:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if len(xs) else None


def runs_to_labels(runs: dict[str, Any], h: int, w: int) -> np.ndarray:
    """The label map back from :func:`label_runs` (what the browser draws, at the display size)."""
    return np.repeat(np.asarray(runs["values"]), np.asarray(runs["lengths"])).reshape(runs.get("h", h),
                                                                                       runs.get("w", w))


def view_payload(ann, classes: list[str], *, seq: int, ack: int = 0, with_image: bool = False,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The canvas document for ``ann`` (see the module doc); ``ack``: the last browser command applied."""
    doc: dict[str, Any] = {"seq": seq, "ack": ack}
    if ann is None:
        return {**doc, "key": None, **(extra or {})}
    h, w = ann.size
    objects = []
    for i, (o, rgb) in enumerate(zip(ann.objects, instance_colours(ann.objects, classes))):
        objects.append({"i": i, "label": o.label, "colour": _hex(rgb),
                        "points": [list(p) for p in o.points], "labels": list(o.point_labels),
                        "box": list(o.box) if o.box else None, "edited": o.edited,
                        "empty": o.mask is None or not o.mask.any(), "hidden": o.hidden, "locked": o.locked})
    used = list(dict.fromkeys([*(o.label for o in ann.objects)]))
    legend = [{"name": c, "colour": hex_colour(classes, c), "used": c in used}
              for c in dict.fromkeys([*classes, *used])]
    doc.update(key=ann.name, file=ann.file_name, w=w, h=h, masks=label_runs(ann, classes),
               objects=objects, current=ann.current, polygons=ann.polygons() if ann.current is not None and not ann.objects[ann.current].hidden else [],
               proposals=len(ann.proposals), proposal_box=_box(ann.proposals[0]) if ann.proposals else None,
               legend=legend)
    if with_image:
        dh, dw = display_size(h, w)
        shown = ann.image if (dh, dw) == (h, w) else cv2.resize(ann.image, (dw, dh), interpolation=cv2.INTER_AREA)
        doc["image"] = data_url(shown, ".jpg" if dh * dw > 1_000_000 else ".png")
    doc.update(extra or {})
    return doc
