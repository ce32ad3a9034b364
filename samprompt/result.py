"""The masks of one object, as the Segmenter returns them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import PromptError
from .prompts import Prompt


@dataclass
class Result:
    """Masks for one object.

    ``masks``: (N, H, W) bool at the original image size, N = 1 or 3 candidates.
    ``scores``: (N,) predicted IoU of each mask.
    ``logits``: (N, h, w) low-res logits as the model gives them (pass one back
    as ``Prompt(mask=...)`` to refine). ``prompt``: the prompt that made them.
    """

    masks: np.ndarray
    scores: np.ndarray
    logits: np.ndarray
    prompt: Prompt | None = None
    extra: dict = field(default_factory=dict)

    @property
    def best_index(self) -> int:
        return int(np.argmax(self.scores))

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: the mask with the highest predicted IoU."""
        return self.masks[self.best_index]

    @property
    def score(self) -> float:
        return float(self.scores[self.best_index])

    @property
    def best_logits(self) -> np.ndarray:
        """(h, w) low-res logits of the best mask (a mask prompt for refinement)."""
        return self.logits[self.best_index]

    def refine(self, x: float, y: float, label: int = 1) -> Prompt:
        """The next prompt of an interactive session: this prompt + one click + these logits."""
        if self.prompt is None:
            raise PromptError("this result has no prompt to refine")
        return self.prompt.with_click(x, y, label, logits=self.best_logits)
