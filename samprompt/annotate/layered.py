"""What a volume and a video share in the annotator: one 2D layer open at a time, saved as JSON + npz.

:class:`LayeredDocument` holds the save and resume skeleton (the revision check that keeps two
tabs from overwriting each other, the arrays written before the JSON that names them) and the
checks before a propagation; :class:`~samprompt.annotate.volume.VolumeAnnotation` and
:class:`~samprompt.annotate.video.VideoAnnotation` fill in their own arrays and fields.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..errors import PromptError
from ..io import atomic_write_bytes, atomic_write_text
from ..prompts import Prompt
from .document import check_revision


class LayeredDocument:
    """Base of the volume and video documents (``ann``: the open layer; ``k``: its index)."""

    kind = ""  # "volume" or "video": the state files' middle suffix and the JSON's kind
    layer = "slice"  # what one 2D layer is called in messages

    def dirty(self) -> bool:
        """Whether the objects changed since the last save or load."""
        return self._dirty or self.ann.dirty()

    def _state_paths(self, folder: Path) -> tuple[Path, Path]:
        return folder / f"{self.name}.{self.kind}.json", folder / f"{self.name}.{self.kind}.npz"

    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _fields(self) -> dict:
        raise NotImplementedError

    def save(self, folder: str | Path) -> Path:
        """Write the state as the next revision; a stale one raises :class:`StaleSaveError`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta, arrays = self._state_paths(folder)
        on_disk = check_revision(meta, self.revision, self.file_name)
        self.store()
        buf = io.BytesIO()
        np.savez(buf, **self._arrays())  # each mask's box and its bits, already compressed
        atomic_write_bytes(arrays, buf.getvalue())
        self.revision = on_disk + 1
        self._dirty = False
        self.ann.mark_saved()
        doc = {"image": self.name, "file_name": self.file_name, "kind": self.kind, "revision": self.revision,
               "done": self.done, **self._fields(), "slice": self.k,
               "objects": {str(i + 1): self.flags[uid] for i, uid in enumerate(self.order) if self.flags.get(uid)}}
        return atomic_write_text(meta, json.dumps(doc, indent=1))

    def _start(self):
        """(the selected object, the prompt to follow it from): its own prompt, or its mask's box when it
        was drawn or corrected by hand; refused when there is nothing to follow."""
        ann = self.ann
        if ann.current is None:
            raise PromptError(f"select or make an object on this {self.layer} first")
        obj = ann.objects[ann.current]
        if obj.locked:
            raise PromptError(f"object {ann.current} ({obj.label}) is locked: unlock it (l) to propagate it")
        if obj.mask is None or not obj.mask.any():
            raise PromptError(f"object {ann.current} has no mask on {self.layer} {self.k} to start from")
        prompt = obj.prompt()
        if prompt is None or obj.edited:
            ys, xs = np.nonzero(obj.mask)
            prompt = Prompt(box=(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        return obj, prompt


__all__ = ["LayeredDocument"]
