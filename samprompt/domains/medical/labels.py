"""A labels file: each output label's name (and colour), shared by every output of ``samprompt medical``.

    {"1": "liver", "2": {"name": "spleen", "color": [0, 200, 0]}, "5": {"name": "aorta"}}

Keys are the label values the prompts give; a name is a string, or an object with ``name`` and an
optional ``color`` (three 0-255 integers). The names go into ``labels.json``, the DICOM SEG's
segment labels and the RTSTRUCT's ROI names (and colours), before any name the prompts give.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError


def read_labels(path: str | Path) -> dict[int, dict]:
    """{label: {"name": str, "color": [r, g, b] or None}} from a labels file; a clear error for a bad one."""
    from ...prompts import read_json

    doc = read_json(path)
    if not isinstance(doc, dict) or not doc:
        raise ConfigError(f"{path}: a labels file is an object of label value -> name, e.g. {{\"1\": \"liver\"}}")
    out = {}
    for key, value in doc.items():
        try:
            label = int(key)
        except ValueError:
            raise ConfigError(f"{path}: label {key!r} is not a whole number") from None
        if not 1 <= label <= 65535:
            raise ConfigError(f"{path}: label {label} is outside 1..65535")
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"].strip():
            raise ConfigError(f"{path}: label {label} needs a name (a string, or {{\"name\": ...}})")
        color = value.get("color")
        if color is not None and (not isinstance(color, list) or len(color) != 3
                                  or not all(isinstance(c, int) and 0 <= c <= 255 for c in color)):
            raise ConfigError(f"{path}: label {label}'s color must be three integers 0-255, got {color!r}")
        out[label] = {"name": value["name"].strip(), "color": color}
    return out
