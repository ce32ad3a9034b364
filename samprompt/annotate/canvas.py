"""What the browser canvas draws: the image once, then only a mask overlay and vectors per edit.

:func:`view_payload` turns an :class:`~samprompt.annotation.ImageAnnotation`
into a small JSON document for ``canvas.js``: the image as a data URL (only
when a new image or slice is shown), an RGBA overlay PNG of the masks coloured
by class (the selected object stronger (the browser outlines it from its polygons), the current
segment-everything proposal filled and outlined in white), and per object its
class, colour, points and box, plus the selected object's polygons for vertex
editing. Sending the overlay alone keeps a click's reply to a few kilobytes and
the picture on screen while it is computed (no flash).
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
PROPOSAL_ALPHA = 110


def class_colour(classes: list[str], label: str) -> tuple[int, int, int]:
    """A class's RGB colour: fixed by its place in the folder's class list."""
    k = classes.index(label) if label in classes else len(classes) + zlib.crc32(label.encode()) % 7
    return colour(k)


def hex_colour(classes: list[str], label: str) -> str:
    r, g, b = class_colour(classes, label)
    return f"#{r:02x}{g:02x}{b:02x}"


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


def _outline(rgba: np.ndarray, mask: np.ndarray, rgb, width: int) -> None:
    cs, _ = cv2.findContours(np.ascontiguousarray(mask, np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(rgba, cs, -1, (*rgb, 255), width)


def render_overlay(ann, classes: list[str], proposal: int | None = 0) -> np.ndarray:
    """(H, W, 4) uint8: objects filled in their class colour, the selected one stronger with an outline,
    and proposal ``proposal`` (if any) filled and outlined in white."""
    h, w = ann.size
    rgba = np.zeros((h, w, 4), np.uint8)
    width = max(1, min(h, w) // 256)
    for i, o in enumerate(ann.objects):
        if o.mask is None or i == ann.current:
            continue
        rgba[o.mask] = (*class_colour(classes, o.label), FILL_ALPHA)
        _outline(rgba, o.mask, class_colour(classes, o.label), width)
    if ann.current is not None and ann.current < len(ann.objects):
        o = ann.objects[ann.current]
        if o.mask is not None:
            rgb = class_colour(classes, o.label)
            rgba[o.mask] = (*rgb, SELECTED_ALPHA)  # its outline is drawn by the browser, from its polygons
    if proposal is not None and ann.proposals and proposal < len(ann.proposals):
        m = ann.proposals[proposal]
        rgba[m] = (255, 255, 255, PROPOSAL_ALPHA)
        _outline(rgba, m, (255, 255, 255), width + 2)
        _outline(rgba, m, (20, 20, 20), max(1, width))
    return rgba


def view_payload(ann, classes: list[str], *, seq: int, ack: int = 0, with_image: bool = False,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The canvas document for ``ann`` (see the module doc); ``ack``: the last browser command applied."""
    doc: dict[str, Any] = {"seq": seq, "ack": ack}
    if ann is None:
        return {**doc, "key": None, **(extra or {})}
    h, w = ann.size
    objects = []
    for i, o in enumerate(ann.objects):
        objects.append({"i": i, "label": o.label, "colour": hex_colour(classes, o.label),
                        "points": [list(p) for p in o.points], "labels": list(o.point_labels),
                        "box": list(o.box) if o.box else None, "edited": o.edited,
                        "empty": o.mask is None or not o.mask.any()})
    used = list(dict.fromkeys([*(o.label for o in ann.objects)]))
    legend = [{"name": c, "colour": hex_colour(classes, c), "used": c in used}
              for c in dict.fromkeys([*classes, *used])]
    doc.update(key=ann.name, file=ann.file_name, w=w, h=h, overlay=data_url(render_overlay(ann, classes)),
               objects=objects, current=ann.current, polygons=ann.polygons() if ann.current is not None else [],
               proposals=len(ann.proposals), legend=legend)
    if with_image:
        doc["image"] = data_url(ann.image, ".jpg" if h * w > 1_000_000 else ".png")
    doc.update(extra or {})
    return doc
