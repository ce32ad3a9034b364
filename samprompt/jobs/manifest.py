"""``OUT/manifest.jsonl``: what a job made, one JSON line per finished item; the last line for an id wins.

Each line has ``id``, ``status`` (``done``, ``failed`` or ``no_prompts``),
``outputs`` ({path relative to OUT: sha256}), ``model_id``, ``learned_id``,
``encoder``, ``version``, ``seconds`` and ``error``. Only the client process
appends to it, one whole line per write, flushed and fsynced, so a kill leaves
at most a torn last line, which is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MANIFEST = "manifest.jsonl"
STATUSES = ("done", "failed", "no_prompts")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Manifest:
    """The manifest of an output folder: read it, append to it, decide what a rerun may skip."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = self.out / MANIFEST
        self.last: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a kill
                if isinstance(rec, dict) and "id" in rec:
                    self.last[rec["id"]] = rec

    def reset(self) -> None:
        """Start a new manifest (``--overwrite``)."""
        self.path.unlink(missing_ok=True)
        self.last.clear()

    def append(self, record: dict) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.last[record["id"]] = record

    def is_done(self, item_id: str, stamp: dict) -> bool:
        """True when the item's last line says done, made by this run's model, learned prompt and
        encoder (``stamp``), and every output it lists still exists with the recorded hash."""
        rec = self.last.get(item_id)
        if rec is None or rec.get("status") != "done":
            return False
        if any(rec.get(k) != v for k, v in stamp.items()):
            return False
        for rel, digest in rec.get("outputs", {}).items():
            f = self.out / rel
            if not f.is_file() or sha256_of(f) != digest:
                return False
        return True
