"""Which windows of a raster to read: a tile grid for automatic mode, object-centred windows for prompts.

Windows are ``(col_off, row_off, width, height)`` in whole raster pixels, always
inside the raster. A prompted object gets a window centred on it and at least
twice its size (context for the model), never smaller than a tile; objects
whose prompts fit together in half a tile share one window, so one encoder
pass serves them all. Because the window follows the object, an object on a
tile seam is never cut.
"""

from __future__ import annotations

import math

import numpy as np

from .prompts import GeoObject

Window = tuple[int, int, int, int]


def _starts(n: int, tile: int, step: int) -> list[int]:
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile, step))
    return starts + [n - tile] if starts[-1] != n - tile else starts


def tile_grid(width: int, height: int, tile: int, overlap: int) -> list[tuple[int, int, Window]]:
    """(row, col, window) of tiles of side ``tile`` overlapping by ``overlap``; the last ones end at the edge."""
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    step = tile - overlap
    return [(r, c, (x, y, min(tile, width), min(tile, height)))
            for r, y in enumerate(_starts(height, tile, step))
            for c, x in enumerate(_starts(width, tile, step))]


def _span(centre: float, side: int, n: int) -> tuple[int, int]:
    if side >= n:
        return 0, n
    start = int(np.floor(round(centre - side / 2, 3) + 0.5))  # snapped: reprojection noise moves no window
    return min(max(start, 0), n - side), side


def window_around(bounds: tuple[float, float, float, float], width: int, height: int, tile: int) -> Window:
    """A window centred on ``bounds`` (XYXY), twice its size or a tile, whichever is larger, inside the raster."""
    x0, y0, x1, y1 = bounds
    side = max(tile, math.ceil(2 * max(x1 - x0, y1 - y0)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    x, w = _span(cx, side, width)
    y, h = _span(cy, side, height)
    return x, y, w, h


def inside(obj: GeoObject, width: int, height: int) -> bool:
    """Whether the object's prompt lies on the raster (every point; some of the box)."""
    if obj.box is not None:
        x0, y0, x1, y1 = obj.box
        return x1 > 0 and y1 > 0 and x0 < width and y0 < height
    return all(0 <= x <= width and 0 <= y <= height for x, y in obj.points)


def group_objects(objects: list[GeoObject], width: int, height: int, tile: int) -> list[tuple[Window, list[GeoObject]]]:
    """Objects grouped into shared windows (see the module doc); an object off the raster is alone, window empty."""
    groups: list[tuple[list[float], list[GeoObject]]] = []
    open_by_cell: dict[tuple[int, int], list[int]] = {}
    out: list[tuple[Window, list[GeoObject]]] = []
    for obj in sorted(objects, key=lambda o: ((o.bounds[1] + o.bounds[3]) / 2, (o.bounds[0] + o.bounds[2]) / 2)):
        if not inside(obj, width, height):
            out.append(((0, 0, 0, 0), [obj]))
            continue
        b = list(obj.bounds)
        cell = (int((b[0] + b[2]) / 2 // tile), int((b[1] + b[3]) / 2 // tile))
        for gi in open_by_cell.get(cell, []):
            u = groups[gi][0]
            joint = [min(u[0], b[0]), min(u[1], b[1]), max(u[2], b[2]), max(u[3], b[3])]
            if max(joint[2] - joint[0], joint[3] - joint[1]) <= tile / 2:
                groups[gi][0][:] = joint
                groups[gi][1].append(obj)
                break
        else:
            open_by_cell.setdefault(cell, []).append(len(groups))
            groups.append((b, [obj]))
    out += [(window_around(tuple(u), width, height, tile), objs) for u, objs in groups]  # type: ignore[arg-type]
    return sorted(out, key=lambda g: min(o.number for o in g[1]))
