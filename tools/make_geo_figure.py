"""docs/geo_polygons.png: runs notebooks/geo.ipynb and saves its figure (polygons from lon/lat prompts).

    python tools/make_geo_figure.py
"""

from __future__ import annotations

import base64
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]

nb = nbformat.read(ROOT / "notebooks" / "geo.ipynb", as_version=4)
NotebookClient(nb, timeout=600).execute()
images = [o["data"]["image/png"] for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
(ROOT / "docs" / "geo_polygons.png").write_bytes(base64.b64decode(images[-1]))
print("wrote docs/geo_polygons.png")
