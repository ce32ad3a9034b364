"""samprompt: prompting Segment Anything, from fixed clicks and boxes to learned prompts.

>>> import samprompt
>>> seg = samprompt.Segmenter()                      # the built-in tiny model
>>> res = seg.predict(image, samprompt.Prompt(box=(10, 20, 90, 120)))  # doctest: +SKIP
>>> res.masks.shape                                  # (1, H, W) bool   # doctest: +SKIP
"""

from .cache import Embedding, EmbeddingCache
from .encoders import Encoder, SamEncoder
from .errors import (
    CheckpointError,
    ConfigError,
    DownloadError,
    ImageError,
    MissingDependencyError,
    PromptError,
    SampromptError,
)
from .evaluation import EvalReport, evaluate_folder, evaluate_image, plot_report
from .export import CocoWriter, export_png, export_yolo, yolo_lines
from .images import iter_labelled, list_images, read_image, read_label_map, to_rgb_uint8
from .jobs import JobSettings, SegmenterSpec, WorkItem, run_job
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
from .normalize import Auto, FixedStretch, Normalizer, Percentile, Window
from .prompts import Prompt, load_prompts, prompts_from_json, prompts_to_json, save_prompts
from .result import Result
from .segmenter import Segmenter
from .synthetic import Scene, make_scene, write_dataset

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "Auto",
    "CheckpointError",
    "CocoWriter",
    "ConfigError",
    "DownloadError",
    "Embedding",
    "EmbeddingCache",
    "Encoder",
    "EvalReport",
    "FixedStretch",
    "ImageError",
    "JobSettings",
    "MissingDependencyError",
    "Normalizer",
    "Percentile",
    "Prompt",
    "PromptError",
    "REGISTRY",
    "Result",
    "SamEncoder",
    "SampromptError",
    "Scene",
    "Segmenter",
    "SegmenterSpec",
    "Window",
    "WorkItem",
    "build_sam",
    "clean_mask",
    "dice",
    "download",
    "evaluate_folder",
    "evaluate_image",
    "export_png",
    "export_yolo",
    "from_label_map",
    "iou",
    "iter_labelled",
    "list_images",
    "load_model",
    "load_prompts",
    "make_scene",
    "mask_to_polygons",
    "mask_to_rle",
    "model_id",
    "overlay",
    "plot_report",
    "prompts_from_json",
    "prompts_to_json",
    "read_image",
    "read_label_map",
    "rle_to_mask",
    "run_job",
    "save_prompts",
    "to_label_map",
    "to_rgb_uint8",
    "write_dataset",
    "yolo_lines",
]
