"""CVAT for images 1.1 XML, in and out.

CVAT's own export writes one ``<image>`` per file with its shapes. A ``<mask>`` holds a
run-length code over the mask's bounding box (``left``, ``top``, ``width``, ``height``):
counts of alternating runs, row by row, starting with a run of background (possibly
empty); its ``rle`` attribute lists them as ``"a, b, c"``, as CVAT writes them (and as
``cvat_sdk.masks.encode_mask`` makes them, checked in the tests). A ``<polygon>`` holds
``points="x,y;x,y;..."`` in continuous pixel coordinates.

Export writes masks (lossless), or polygons with ``shapes="polygon"``; who made and
edited each object goes in ``<attribute>`` elements declared on every label, so CVAT
imports the file as it is. Import reads masks and polygons (boxes, points and
polylines are not region masks and are counted as skipped).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from xml.sax.saxutils import XMLGenerator

import numpy as np

from ..errors import SampromptError
from .document import WHO
from .label_studio import _fill


def mask_rle(mask: np.ndarray) -> tuple[list[int], tuple[int, int, int, int]]:
    """(runs over the bounding box, (left, top, width, height)) of a non-empty (H, W) mask."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        raise SampromptError("an empty mask has no CVAT code")
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    flat = np.asarray(mask[y0:y1, x0:x1], bool).ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]  # the code starts with background
    return runs, (int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def decode_mask(rle: str | list[int], left: int, top: int, width: int, height: int,
                size: tuple[int, int]) -> np.ndarray:
    """A ``<mask>`` element's code -> (H, W) bool mask of the image."""
    runs = [int(float(v)) for v in rle.split(",")] if isinstance(rle, str) else [int(v) for v in rle]
    if sum(runs) != width * height:
        raise SampromptError(f"a CVAT mask code covers {sum(runs)} pixels, its box {width}x{height}")
    h, w = size
    if left < 0 or top < 0 or left + width > w or top + height > h:
        raise SampromptError(f"a CVAT mask box ({left}, {top}, {width}x{height}) leaves the {w}x{h} image")
    values = np.arange(len(runs)) % 2 == 1
    out = np.zeros(size, bool)
    out[top:top + height, left:left + width] = np.repeat(values, runs).reshape(height, width)
    return out


def write_xml(path: str | Path, images, labels: list[str], *, shapes: str = "mask") -> Path:
    """Write CVAT for images 1.1 XML: ``images`` yields (name, (H, W), [(label, mask, who), ...])."""
    import io

    from ..io import atomic_write_text
    from ..masks import mask_to_polygons

    if shapes not in ("mask", "polygon"):
        raise SampromptError(f"CVAT shapes are 'mask' or 'polygon', not {shapes!r}")
    buf = io.StringIO()
    xml = XMLGenerator(buf, "utf-8", short_empty_elements=True)
    depth = 0

    def open_(tag, attrs=None, text=None, close=False):
        nonlocal depth
        xml.ignorableWhitespace("\n" + "  " * depth)
        xml.startElement(tag, attrs or {})
        if text is not None:
            xml.characters(text)
        if close or text is not None:
            xml.endElement(tag)
        else:
            depth += 1

    def close(tag):
        nonlocal depth
        depth -= 1
        xml.ignorableWhitespace("\n" + "  " * depth)
        xml.endElement(tag)

    images = list(images)
    xml.startDocument()
    open_("annotations")
    open_("version", text="1.1")
    open_("meta")
    open_("task")
    open_("name", text="samprompt")
    open_("size", text=str(len(images)))
    open_("mode", text="annotation")
    open_("labels")
    for name in labels:
        open_("label")
        open_("name", text=name)
        open_("type", text=shapes)
        open_("attributes")
        for attr in WHO:
            open_("attribute")
            for k, v in (("name", attr), ("mutable", "True"), ("input_type", "text"), ("default_value", ""),
                         ("values", "")):
                open_(k, text=v)
            close("attribute")
        close("attributes")
        close("label")
    close("labels")
    close("task")
    close("meta")
    for idx, (name, (h, w), objects) in enumerate(images):
        open_("image", OrderedDict(id=str(idx), name=str(name), width=str(w), height=str(h)))
        for z, (label, mask, who) in enumerate(objects):
            if not mask.any():
                continue
            common = OrderedDict(label=label, source="semi-auto", occluded="0")
            pieces = []
            if shapes == "mask":
                runs, (left, top, bw, bh) = mask_rle(mask)
                pieces.append(("mask", OrderedDict(common, rle=", ".join(map(str, runs)), left=str(left),
                                                   top=str(top), width=str(bw), height=str(bh), z_order=str(z))))
            else:
                for ring in mask_to_polygons(mask):
                    pts = ";".join(f"{x:.2f},{y:.2f}" for x, y in np.asarray(ring).reshape(-1, 2))
                    pieces.append(("polygon", OrderedDict(common, points=pts, z_order=str(z))))
            for tag, attrs in pieces:
                open_(tag, attrs)
                for k in WHO:
                    if (who or {}).get(k) is not None:
                        open_("attribute", {"name": k}, text=str(who[k]))
                close(tag)
        close("image")
    close("annotations")
    xml.endDocument()
    return atomic_write_text(path, buf.getvalue() + "\n")


class CvatXml:
    """Objects from a CVAT for images 1.1 XML file, matched to images by file name."""

    def __init__(self, path: Path) -> None:
        from defusedxml import ElementTree

        try:
            root = ElementTree.parse(str(path)).getroot()
        except (ElementTree.ParseError, ValueError, OSError) as exc:  # defusedxml's refusals are ValueErrors
            raise SampromptError(f"cannot read {path} as CVAT XML: {exc}") from None
        if root.tag != "annotations":
            raise SampromptError(f"{path} is not CVAT XML (its root is <{root.tag}>, not <annotations>)")
        if root.find("track") is not None and root.find("image") is None:
            raise SampromptError(f"{path} is CVAT for video (tracks); export the task as 'CVAT for images 1.1'")
        self.images = {Path(im.get("name", "")).name: im for im in root.iter("image")}
        self.skipped = 0

    def objects(self, file_name: str, size: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
        im = self.images.get(Path(file_name).name)
        if im is None:
            return []
        h, w = int(float(im.get("height", size[0]))), int(float(im.get("width", size[1])))
        if (h, w) != tuple(size):
            raise SampromptError(f"the CVAT file has {file_name} as {w}x{h}, the image is {size[1]}x{size[0]}")
        shapes = sorted(im, key=lambda el: int(el.get("z_order", 0)))
        out = []
        for el in shapes:
            label = el.get("label", "object")
            if el.tag == "mask":
                out.append((label, decode_mask(el.get("rle", ""), int(el.get("left")), int(el.get("top")),
                                               int(el.get("width")), int(el.get("height")), (h, w))))
            elif el.tag == "polygon":
                pts = np.array([[float(v) for v in p.split(",")] for p in el.get("points", "").split(";") if p])
                if len(pts) >= 3:
                    out.append((label, _fill(pts, (h, w))))
            else:
                self.skipped += 1
        return out


__all__ = ["CvatXml", "decode_mask", "mask_rle", "write_xml"]
