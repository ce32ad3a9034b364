"""Generated data with known truth: 2D scenes (:mod:`.scenes`) and CT-like volumes (:mod:`.volumes`)."""

from .scenes import STYLES, Scene, make_scene, write_dataset

__all__ = ["STYLES", "Scene", "make_scene", "write_dataset"]
