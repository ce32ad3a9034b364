"""Prompts for volumes: a documented JSON schema, parsed into :class:`VolumeObject` with clear errors.

One volume::

    {"objects": [
      {"label": 1, "name": "liver", "box": [30, 40, 70, 80], "slice": 20},
      {"label": 2, "box3d": [10, 12, 5, 30, 40, 25]},
      {"label": 3, "points": [[50, 50, 18], [52, 60, 18]], "labels": [1, 0]},
      {"label": 4, "points": [[-12.5, 30.0, 40.0]], "space": "world"},
      {"label": 5, "mask": "coarse_liver.nii.gz"}
    ]}

Several volumes: ``{"NAME": {"objects": [...]}, ...}`` keyed by the file name
without ``.nii``/``.nii.gz`` or the series folder's name; an ``{"objects": ...}``
document given for a folder applies to every volume in it.

Each object: ``label`` (its integer value in the output, 1..65535, unique in the
volume), an optional ``name``, and exactly one of

* ``box`` ``[x0, y0, x1, y1]`` + ``slice`` (+ ``axis``, default 2): a box on one key
  slice, the first and last voxel it covers (inclusive, as ``np.where(mask)``'s
  minimum and maximum give them), propagated up and down; voxel space only;
* ``box3d`` ``[x0, y0, z0, x1, y1, z1]``: a 3D box, per-slice boxes inside its z range;
* ``points`` ``[[x, y, z], ...]`` with ``labels`` (1 object, 0 background;
  default all 1): clicks, propagated from the slice with the most positive ones;
* ``mask``: a coarse mask file (NIfTI) on the volume's grid, relative to the prompts file.

``space`` (default ``"voxel"``): voxel indices in the file's own array order (a
NIfTI as nibabel loads it: x = first axis, y = second, z = third; a DICOM
series: column, row, slice sorted along the slice normal), the voxel centre at
the integer index; ``slice`` indexes ``axis`` (``data[:, :, slice]`` for axis
2). ``"world"``: scanner millimetres in RAS as the affine gives them, for
``points`` and ``box3d`` corners.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ...errors import PromptError
from ...prompts import read_json

KINDS = ("box", "box3d", "points", "mask")
SPACES = ("voxel", "world")


@dataclass(frozen=True)
class VolumeObject:
    """One object to segment in a volume (see the module doc for the fields)."""

    label: int
    kind: str
    name: str | None = None
    box: tuple[float, ...] | None = None
    slice: int | None = None
    axis: int = 2
    box3d: tuple[float, ...] | None = None
    points: tuple[tuple[float, float, float], ...] | None = None
    labels: tuple[int, ...] | None = None
    mask: str | None = None
    space: str = "voxel"

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if v is not None and k != "kind"}
        if self.kind != "box":
            d.pop("axis", None)
        return d


def _numbers(v: Any, n: int, what: str, where: str) -> tuple[float, ...]:
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise PromptError(f"{where}: {what} must be a list of {n} numbers, got {v!r}")
    try:
        out = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise PromptError(f"{where}: {what} must be a list of {n} numbers, got {v!r}") from None
    if any(x != x or x in (float("inf"), float("-inf")) for x in out):
        raise PromptError(f"{where}: {what} must be finite, got {v!r}")
    return out


def parse_object(d: Any, where: str, base: Path | None = None) -> VolumeObject:
    """One object of the schema; ``where`` names it in errors; ``base``: the folder ``mask`` paths are relative to."""
    if not isinstance(d, dict):
        raise PromptError(f"{where}: an object must be a JSON object with a label, got {d!r}")
    unknown = set(d) - {"label", "name", "box", "slice", "axis", "box3d", "points", "labels", "mask", "space"}
    if unknown:
        raise PromptError(f"{where}: unknown key(s) {sorted(unknown)}; an object has label, name, space and one of "
                          f"{', '.join(KINDS)}")
    label = d.get("label")
    if isinstance(label, bool) or not isinstance(label, int) or not 1 <= label <= 65535:
        raise PromptError(f"{where}: label must be an integer from 1 to 65535 (its value in the output), got {label!r}")
    kinds = [k for k in KINDS if k in d]
    if len(kinds) != 1:
        raise PromptError(f"{where}: give exactly one of {', '.join(KINDS)}, got {kinds or 'none'}")
    kind = kinds[0]
    space = d.get("space", "voxel")
    if space not in SPACES:
        raise PromptError(f"{where}: space must be 'voxel' or 'world', got {space!r}")
    name = d.get("name")
    if name is not None and not isinstance(name, str):
        raise PromptError(f"{where}: name must be a string, got {name!r}")
    fields: dict[str, Any] = {"label": label, "kind": kind, "name": name, "space": space}
    if "slice" in d and kind != "box":
        raise PromptError(f"{where}: 'slice' goes with a key-slice 'box'")
    if kind == "box":
        x0, y0, x1, y1 = _numbers(d["box"], 4, "box [x0, y0, x1, y1]", where)
        if x1 < x0 or y1 < y0:
            raise PromptError(f"{where}: box needs x0 <= x1 and y0 <= y1, got {list(d['box'])}")
        if space != "voxel":
            raise PromptError(f"{where}: a key-slice box is in voxel space; use box3d or points for world coordinates")
        sl, axis = d.get("slice"), d.get("axis", 2)
        if isinstance(sl, bool) or not isinstance(sl, int):
            raise PromptError(f"{where}: a box needs 'slice', the integer index of its key slice, got {sl!r}")
        if axis not in (0, 1, 2) or isinstance(axis, bool):
            raise PromptError(f"{where}: axis must be 0, 1 or 2, got {axis!r}")
        fields.update(box=(x0, y0, x1, y1), slice=sl, axis=axis)
    elif kind == "box3d":
        b = _numbers(d["box3d"], 6, "box3d [x0, y0, z0, x1, y1, z1]", where)
        if any(b[i + 3] < b[i] for i in range(3)):
            raise PromptError(f"{where}: box3d needs x0 <= x1, y0 <= y1 and z0 <= z1, got {list(d['box3d'])}")
        fields["box3d"] = b
    elif kind == "points":
        pts = d["points"]
        if not isinstance(pts, list) or not pts:
            raise PromptError(f"{where}: points must be a non-empty list of [x, y, z]")
        points = tuple(_numbers(p, 3, f"points[{i}] [x, y, z]", where) for i, p in enumerate(pts))
        labels = d.get("labels", [1] * len(points))
        if not isinstance(labels, list) or len(labels) != len(points) or any(v not in (0, 1) for v in labels):
            raise PromptError(f"{where}: labels must be one 0 or 1 per point ({len(points)}), got {labels!r}")
        if 1 not in labels:
            raise PromptError(f"{where}: points need at least one positive point (label 1)")
        fields.update(points=points, labels=tuple(int(v) for v in labels))  # type: ignore[arg-type]
    else:
        m = d["mask"]
        if not isinstance(m, str) or not m:
            raise PromptError(f"{where}: mask must be the path of a mask file, got {m!r}")
        path = Path(m) if base is None or Path(m).is_absolute() else base / m
        fields["mask"] = str(path)
    if "labels" in d and kind != "points":
        raise PromptError(f"{where}: 'labels' goes with 'points'")
    return VolumeObject(**fields)


def parse_objects(doc: Any, where: str, base: Path | None = None) -> list[VolumeObject]:
    """``{"objects": [...]}`` -> objects, with unique labels."""
    if not isinstance(doc, dict) or "objects" not in doc:
        raise PromptError(f"{where}: expected {{\"objects\": [...]}}")
    objs = doc["objects"]
    if not isinstance(objs, list) or not objs:
        raise PromptError(f"{where}: 'objects' must be a non-empty list")
    out = [parse_object(o, f"{where}, object {i + 1}", base) for i, o in enumerate(objs)]
    seen: set[int] = set()
    for o in out:
        if o.label in seen:
            raise PromptError(f"{where}: label {o.label} is used by two objects; each object needs its own label")
        seen.add(o.label)
    return out


def read_volume_prompts(path: str | Path, names: list[str]) -> dict[str, list[VolumeObject]]:
    """Objects per volume name from a prompts file (see the module doc); names not in it get ``[]``."""
    path = Path(path)
    doc = read_json(path)
    base = path.parent
    if isinstance(doc, dict) and "objects" in doc:
        objs = parse_objects(doc, str(path), base)
        return {n: objs for n in names}
    if not isinstance(doc, dict) or not doc:
        raise PromptError(f"{path}: expected {{\"objects\": [...]}} or {{\"NAME\": {{\"objects\": [...]}}, ...}}")
    unknown = [k for k in doc if k not in names]
    listed = f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})"
    if len(unknown) == len(doc):
        raise PromptError(f"{path}: none of its volume names ({', '.join(unknown[:4])}) is among the inputs {listed}")
    if unknown:
        import warnings

        warnings.warn(f"{path}: no input volume is named {', '.join(map(repr, unknown[:4]))}; those prompts are unused",
                      stacklevel=2)
    return {n: parse_objects(doc[n], f"{path} [{n}]", base) if n in doc else [] for n in names}


__all__ = ["KINDS", "VolumeObject", "parse_object", "parse_objects", "read_volume_prompts"]
