"""The Segmenter: encode an image once (cached), decode many prompts in batches.

It reproduces ``segment_anything.SamPredictor`` exactly (same resize, same
normalisation and padding, same decoder calls), and adds: an embedding cache,
batched decoding of many objects, multimask selection by predicted IoU, mask
prompts given as binary masks, and an automatic "segment everything" mode.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from .cache import Embedding, EmbeddingCache, embedding_key
from .errors import PromptError
from .images import ImageLike, to_rgb_uint8
from .models import load_model, model_id
from .prompts import Prompt

MultimaskArg = Union[bool, str]


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


class Segmenter:
    """Prompted SAM segmentation with an embedding cache.

    Args:
        model: a ``Sam``, a registry name (``"tiny"``, ``"vit_b"``, ...) or a
            checkpoint path. ``None`` loads the built-in ``tiny`` model.
        device: torch device (default: the model's).
        cache: an :class:`EmbeddingCache` to share; by default a new one with
            ``cache_size`` entries in memory and ``cache_dir`` on disk (if given).
        learned: an optional :class:`~samprompt.learned.LearnedPrompt` (or the folder
            it was saved in) applied in the encoder; it is part of the cache key.
    """

    def __init__(
        self,
        model: Sam | str | None = None,
        *,
        device: str | torch.device | None = None,
        cache: EmbeddingCache | None = None,
        cache_size: int = 16,
        cache_dir: str | None = None,
        learned=None,
    ) -> None:
        if model is None or isinstance(model, (str,)) or hasattr(model, "__fspath__"):
            model = load_model("tiny" if model is None else model)
        if device is not None:
            model = model.to(device)
        self.model: Sam = model.eval()
        self.transform = ResizeLongestSide(self.model.image_encoder.img_size)
        self.cache = cache if cache is not None else EmbeddingCache(cache_size, cache_dir)
        if isinstance(learned, str) or hasattr(learned, "__fspath__"):
            from .learned import LearnedPrompt

            learned = LearnedPrompt.load(learned, self.model)
        self.learned = learned
        self.encoder_calls = 0
        self._model_id = model_id(self.model)

    # ------------------------------------------------------------- encoding
    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def img_size(self) -> int:
        return self.model.image_encoder.img_size

    @property
    def low_res_size(self) -> tuple[int, int]:
        """(h, w) of low-res logits and of mask prompts: 4x the embedding grid."""
        h, w = self.model.prompt_encoder.mask_input_size
        return (int(h), int(w))

    def _key(self, rgb: np.ndarray) -> str:
        learned_id = getattr(self.learned, "id", None)
        return embedding_key(rgb, self._model_id, learned_id)

    def embed(self, image: ImageLike) -> Embedding:
        """Encode an image (or fetch its embedding from the cache)."""
        rgb = to_rgb_uint8(image)
        return self._embed_rgb(rgb)

    def _embed_rgb(self, rgb: np.ndarray) -> Embedding:
        key = self._key(rgb)
        emb = self.cache.get(key)
        if emb is not None:
            return Embedding(emb.features.to(self.device), emb.input_size, emb.original_size)
        x = self.transform.apply_image(rgb)
        x = torch.as_tensor(x, device=self.device).permute(2, 0, 1).contiguous()[None]
        with torch.no_grad():
            feats = self._encode(self.model.preprocess(x))
        emb = Embedding(feats, tuple(x.shape[-2:]), tuple(rgb.shape[:2]))  # type: ignore[arg-type]
        self.cache.put(key, emb)
        return emb

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        self.encoder_calls += 1
        if self.learned is not None:
            return self.learned.encode(self.model, x)
        return self.model.image_encoder(x)

    # ------------------------------------------------------------- decoding
    def _mask_input(self, prompt: Prompt, emb: Embedding) -> np.ndarray:
        """(1, h, w) float32 low-res logits for a prompt's mask."""
        m = prompt.mask
        assert m is not None
        if m.dtype == bool:
            return self.mask_to_logits(m, emb)[None]
        if tuple(m.shape) != self.low_res_size:
            raise PromptError(
                f"mask prompt logits have shape {tuple(m.shape)}; this model expects {self.low_res_size} "
                "(pass a previous Result.logits[i], or a bool mask of the image's size)"
            )
        return m.astype(np.float32)[None]

    def mask_to_logits(self, mask: np.ndarray, emb: Embedding, scale: float = 20.0) -> np.ndarray:
        """Turn an (H, W) bool mask into (h, w) low-res logits in the model's frame.

        The mask is resized and padded like the image, area-averaged down to the
        low-res grid, and mapped to ``scale * (2 * fraction - 1)``.
        """
        t = torch.as_tensor(mask.astype(np.float32))[None, None]
        t = F.interpolate(t, emb.input_size, mode="bilinear", align_corners=False)
        t = F.pad(t, (0, self.img_size - emb.input_size[1], 0, self.img_size - emb.input_size[0]))
        t = F.interpolate(t, self.low_res_size, mode="area")
        return (scale * (2 * t[0, 0] - 1)).numpy()

    @torch.no_grad()
    def decode_batch(
        self,
        emb: Embedding,
        prompts: Sequence[Prompt],
        multimask: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode prompts that share one signature in one decoder call.

        Returns low-res logits (B, M, h, w), predicted IoUs (B, M) and masks
        upscaled to the original size as logits (B, M, H, W); M = 3 if multimask else 1.
        """
        sig = prompts[0].signature
        if any(p.signature != sig for p in prompts):
            raise ValueError("decode_batch needs prompts with one signature")
        n_points, has_box, has_mask = sig
        points = boxes = masks = None
        if n_points:
            coords = np.stack([self.transform.apply_coords(p.points, emb.original_size) for p in prompts])
            labels = np.stack([p.labels for p in prompts])
            points = (
                torch.as_tensor(coords, dtype=torch.float, device=self.device),
                torch.as_tensor(labels, dtype=torch.int, device=self.device),
            )
        if has_box:
            b = np.stack([self.transform.apply_boxes(p.box[None], emb.original_size)[0] for p in prompts])
            boxes = torch.as_tensor(b, dtype=torch.float, device=self.device)
        if has_mask:
            m = np.stack([self._mask_input(p, emb) for p in prompts])
            masks = torch.as_tensor(m, dtype=torch.float, device=self.device)
        prompt_encoder = getattr(self.learned, "prompt_encoder", None)
        mask_decoder = getattr(self.learned, "mask_decoder", None)
        if prompt_encoder is None:
            prompt_encoder = self.model.prompt_encoder
        if mask_decoder is None:
            mask_decoder = self.model.mask_decoder
        sparse, dense = prompt_encoder(points=points, boxes=boxes, masks=masks)
        low_res, iou = mask_decoder(
            image_embeddings=emb.features,
            image_pe=prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        up = self.model.postprocess_masks(low_res, emb.input_size, emb.original_size)
        return low_res, iou, up

    def predict(
        self,
        image: ImageLike,
        prompts: Prompt | Sequence[Prompt],
        *,
        multimask: MultimaskArg = "auto",
        best_only: bool = True,
        batch_size: int | None = None,
    ) -> Result | list[Result]:
        """Segment one object (a :class:`Prompt`) or many (a list: one result each).

        Args:
            image: (H, W[, C]) array or file path (see :func:`samprompt.images.to_rgb_uint8`).
            prompts: one prompt, or a list of prompts, in original-image pixels.
            multimask: ``True``: three candidate masks; ``False``: one;
                ``"auto"``: three only for ambiguous prompts (a single point).
            best_only: with three candidates, keep only the one of highest
                predicted IoU (else all three, in the model's order).
            batch_size: objects per decoder call; default 4 on CPU (larger
                batches thrash the cache there: SAM's decoder copies the image
                embedding per object) and 64 on accelerators.
        """
        if batch_size is None:
            batch_size = 4 if self.device.type == "cpu" else 64
        single = isinstance(prompts, Prompt)
        plist: list[Prompt] = [prompts] if single else list(prompts)  # type: ignore[list-item]
        if not plist:
            raise PromptError("no prompts given; for promptless segmentation use segment_everything()")
        for p in plist:
            if not isinstance(p, Prompt):
                raise PromptError(f"expected Prompt objects, got {type(p).__name__}")
        rgb = to_rgb_uint8(image)
        for p in plist:
            p.validate(*rgb.shape[:2])
        emb = self._embed_rgb(rgb)
        results: list[Result | None] = [None] * len(plist)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, p in enumerate(plist):
            mm = p.is_ambiguous if multimask == "auto" else bool(multimask)
            groups[(p.signature, mm)].append(i)
        for (_, mm), idx in groups.items():
            for start in range(0, len(idx), batch_size):
                chunk = idx[start : start + batch_size]
                low, iou, up = self.decode_batch(emb, [plist[i] for i in chunk], mm)
                masks = (up > self.model.mask_threshold).cpu().numpy()
                low_np, iou_np = low.cpu().numpy(), iou.cpu().numpy()
                for j, i in enumerate(chunk):
                    m, s, lo = masks[j], iou_np[j], low_np[j]
                    if best_only and len(s) > 1:
                        k = int(np.argmax(s))
                        m, s, lo = m[k : k + 1], s[k : k + 1], lo[k : k + 1]
                    results[i] = Result(m, s, lo, plist[i])
        return results[0] if single else results  # type: ignore[return-value]

    def segment_everything(self, image: ImageLike, **kwargs) -> Result:
        """Promptless "segment everything": see :func:`samprompt.automatic.segment_everything`."""
        from .automatic import segment_everything

        return segment_everything(self, image, **kwargs)
