"""samprompt: prompting Segment Anything, from fixed clicks and boxes to learned prompts.

>>> import samprompt
>>> seg = samprompt.Segmenter()                      # the built-in tiny model
>>> res = seg.predict(image, samprompt.Prompt(box=(10, 20, 90, 120)))  # doctest: +SKIP
>>> res.masks.shape                                  # (1, H, W) bool   # doctest: +SKIP
"""

from .cache import Embedding, EmbeddingCache
from .errors import (
    CheckpointError,
    DownloadError,
    ImageError,
    MissingDependencyError,
    PromptError,
    SampromptError,
)
from .evaluation import EvalReport, evaluate_folder, evaluate_image, plot_report
from .export import CocoWriter, export_png, export_yolo, yolo_lines
from .images import read_image, to_rgb_uint8
from .masks import (
    clean_mask,
    dice,
    from_label_map,
    iou,
    mask_to_polygons,
    mask_to_rle,
    overlay,
    rle_to_mask,
    to_label_map,
)
from .models import REGISTRY, Architecture, build_sam, download, load_model, model_id
from .prompts import Prompt, load_prompts, prompts_from_json, prompts_to_json, save_prompts
from .segmenter import Result, Segmenter
from .synthetic import Scene, make_scene, write_dataset

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "CheckpointError",
    "CocoWriter",
    "DownloadError",
    "Embedding",
    "EmbeddingCache",
    "EvalReport",
    "ImageError",
    "MissingDependencyError",
    "Prompt",
    "PromptError",
    "REGISTRY",
    "Result",
    "SampromptError",
    "Scene",
    "Segmenter",
    "build_sam",
    "clean_mask",
    "dice",
    "download",
    "evaluate_folder",
    "evaluate_image",
    "plot_report",
    "export_png",
    "export_yolo",
    "from_label_map",
    "iou",
    "load_model",
    "load_prompts",
    "make_scene",
    "mask_to_polygons",
    "mask_to_rle",
    "model_id",
    "overlay",
    "prompts_from_json",
    "prompts_to_json",
    "read_image",
    "rle_to_mask",
    "save_prompts",
    "to_label_map",
    "to_rgb_uint8",
    "write_dataset",
    "yolo_lines",
]
