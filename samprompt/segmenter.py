"""The Segmenter: encode an image once (cached), decode many prompts in batches.

It reproduces ``segment_anything.SamPredictor`` exactly with the reference
encoder (same resize, normalisation and padding, same decoder calls), and adds:
an embedding cache, batched decoding of many objects, multimask selection by
predicted IoU, mask prompts given as binary masks, an encoder seam
(:mod:`samprompt.encoders`) and an automatic "segment everything" mode.

    emb = seg.embed(image)            # (cached) image embedding
    res = seg.decode(emb, prompts)    # as often as you like, no re-encoding
    res = seg.predict(image, prompts) # both at once
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam

from .backends import make_encoder
from .cache import Embedding, EmbeddingCache, embedding_key
from .encoders import Encoder, fast_settings
from .errors import ConfigError, PromptError, SampromptError
from .families import Family, family_of
from .images import ImageLike, to_rgb_uint8
from .models import load_model, model_id
from .normalize import Normalizer
from .prompts import Prompt
from .result import Result

MultimaskArg = Union[bool, str]

__all__ = ["Result", "Segmenter"]


class Segmenter:
    """Prompted SAM segmentation with an embedding cache.

    Args:
        model: a model, a registry name (``"tiny"``, ``"vit_b"``, ``"sam2.1_hiera_tiny"``, ...)
            or a checkpoint path; ``None`` loads the built-in ``tiny`` model. A model
            may be a SAM, a SAM 2 (``sam2.build_sam.build_sam2``) or a SAM-HQ
            (``segment_anything_hq.sam_model_registry``) built by its own package.
        family: ``"medsam"`` to run a SAM ViT-B with MedSAM's preprocessing (a
            model loaded as ``medsam_vit_b`` carries it already); by default the
            family follows from the model (:mod:`samprompt.families`).
        device: torch device (default: the model's).
        cache: an :class:`EmbeddingCache` to share; by default a new one with
            ``cache_size`` entries in memory and ``cache_dir`` on disk (if given).
        learned: an optional learned prompt (a :class:`~samprompt.learned.LearnedPrompt`,
            or any object with ``id`` and ``encode(model, x)``) applied in the
            encoder; load a saved one with ``samprompt.learned.LearnedPrompt.load(DIR, model)``.
        encoder: the :class:`~samprompt.encoders.Encoder` that computes embeddings;
            by default the one ``precision``, ``attn_impl`` and ``backend`` select.
        precision: ``"fp32"`` (the reference), ``"bf16"`` (autocast on the
            encoder), ``"fp16"`` (CUDA only), ``"int8"`` (CPU only, quantised linear
            layers), ``"int8+bf16"`` (those, with the attention in bf16; CPUs with
            native bf16; implies ``attn_impl="sdpa"``) or ``"fast"``: the fastest this device
            runs well, detected (:func:`~samprompt.encoders.fast_settings`:
            int8+bf16 on avx512_bf16 CPUs without AMX, bf16 on AMX CPUs and recent
            GPUs, else int8; SDPA attention), which also sets ``attn_impl`` and
            ``decoder``; the decoder always runs in fp32.
        attn_impl: the encoder's attention, ``"sam"`` (the reference) or ``"sdpa"``
            (fused, relative-position bias chunked over query rows).
        decoder: ``"reference"`` (SAM's mask decoder as it is, bit for bit) or
            ``"fast"`` (:mod:`~samprompt.fast_decoder`: the same sums rearranged,
            equal up to float rounding, a third faster on ViT-B); by default
            ``"fast"`` with ``precision="fast"``, else ``"reference"``.
        backend: ``"torch"`` or ``"onnx"`` (encoder and decoder exported by
            ``samprompt export-onnx`` into ``onnx_dir``, run by onnxruntime).
        normalize: how images become uint8 RGB (default
            :class:`~samprompt.normalize.Auto`); e.g. ``Window.from_level(400, 40)`` for CT.

    The model, the learned prompt and the encoder all go into the embedding cache key.
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
        encoder: Encoder | None = None,
        normalize: Normalizer | None = None,
        precision: str = "fp32",
        attn_impl: str = "sam",
        backend: str = "torch",
        onnx_dir: str | None = None,
        family: str | None = None,
        decoder: str | None = None,
    ) -> None:
        if model is None or isinstance(model, str) or hasattr(model, "__fspath__"):
            model = load_model("tiny" if model is None else model, family=family)
        if device is not None:
            model = model.to(device)
        self.model: Sam = model.eval()
        self.family: Family = family_of(self.model, family)
        self.cache = cache if cache is not None else EmbeddingCache(cache_size, cache_dir)
        if isinstance(learned, str) or hasattr(learned, "__fspath__"):
            raise SampromptError(
                f"learned={str(learned)!r} is a path; load it first: "
                "samprompt.learned.LearnedPrompt.load(PROMPT_DIR, model)"
            )
        self.learned = learned
        if learned is not None and not self.family.vit_tools and not getattr(learned, "is_pixel", False):
            raise ConfigError(f"on a {self.family.name} model only pixel prompts (pixel-pad, pixel-fourier) run; "
                              "prompt tokens and fine-tuned parts act inside SAM's ViT or decoder")
        if not self.family.vit_tools and (attn_impl != "sam" or backend != "torch"):
            raise ConfigError(f"attn_impl={attn_impl!r} and backend={backend!r} are written for SAM's ViT; a "
                              f"{self.family.name} model runs with attn_impl='sam', backend='torch' "
                              "(precision='bf16' or 'int8' still apply)")
        if decoder not in (None, "reference", "fast"):
            raise ConfigError(f"decoder must be 'reference' or 'fast', got {decoder!r}")
        self.fast_decoder = decoder == "fast" or (decoder is None and precision == "fast")
        if precision == "fast":
            precision, attn_impl = fast_settings(self.model.device, vit=self.family.vit_tools)
        if encoder is None:
            encoder = make_encoder(precision, attn_impl, backend, onnx_dir, self.model.device)
        encoder.bind(self.model)
        if learned is not None and not encoder.supports_learned:
            raise ConfigError(f"learned prompts act inside the torch encoder; the {encoder.id} encoder cannot run "
                              "them (use backend='torch', with attn_impl='sdpa' for speed)")
        self.encoder: Encoder = encoder
        self._encode_lock = threading.Lock()  # a background prefetch shares the encoder
        self._cache_lock = threading.Lock()
        self.normalize = normalize
        self.encoder_calls = 0
        self.model_id = model_id(self.model)

    # ------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def img_size(self) -> int:
        """Side of the encoder's square input in pixels."""
        return self.family.img_size(self.model)

    @property
    def low_res_size(self) -> tuple[int, int]:
        """(h, w) of low-res logits and of mask prompts: 4x the embedding grid."""
        return self.family.low_res_size(self.model)

    @property
    def mask_threshold(self) -> float:
        """Logit above which a pixel belongs to the mask."""
        return self.family.mask_threshold(self.model)

    @property
    def learned_id(self) -> str | None:
        """Id of the learned prompt in use, or None."""
        return getattr(self.learned, "id", None)

    # ------------------------------------------------------------- encoding
    def embed(self, image: ImageLike) -> Embedding:
        """Encode an image (or fetch its embedding from the cache).

        ``image``: (H, W[, C]) array or file path, normalised with ``self.normalize``.
        """
        return self._embed_rgb(to_rgb_uint8(image, self.normalize))

    def _embed_rgb(self, rgb: np.ndarray) -> Embedding:
        key = embedding_key(rgb, self.model_id, self.learned_id, self.encoder.id, self.family.name)
        emb = self._cached(key)
        if emb is not None:
            return emb
        with self._encode_lock:  # one encoder pass at a time; a prefetch of this image may have just ended
            emb = self._cached(key)
            if emb is not None:
                return emb
            x, input_size = self.family.model_input(self.model, rgb)
            self.encoder_calls += 1
            original = (int(rgb.shape[0]), int(rgb.shape[1]))
            if self.family.vit_tools:  # SAM's ViT (SAM, MedSAM): learned prompts act inside its encoder
                emb = Embedding(self.encoder.encode(self.model, x, self.learned), input_size, original)
            else:
                learned = self.learned
                out = self.encoder.encode(self.model, x, forward=lambda t: self.family.forward(
                    self.model, t if learned is None else learned.pixels(self.model, t)))
                emb = Embedding(out.pop("features"), input_size, original, out)
            with self._cache_lock:
                self.cache.put(key, emb)
            return emb

    def _cached(self, key: str) -> Embedding | None:
        with self._cache_lock:
            emb = self.cache.get(key)
        return None if emb is None else emb.to(self.device)

    def prefetch(self, image: ImageLike) -> "threading.Thread":
        """Encode ``image`` in a background thread (into the cache), e.g. the next image of a folder.

        Errors are swallowed: the foreground :meth:`embed` will meet them again.
        """

        def work() -> None:
            try:
                self.embed(image)
            except Exception:  # noqa: BLE001 - reported when the image is really opened
                pass

        thread = threading.Thread(target=work, name="samprompt-prefetch", daemon=True)
        thread.start()
        return thread

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
        upscale: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Decode prompts that share one signature in one decoder call (no validation).

        Returns low-res logits (B, M, h, w), predicted IoUs (B, M) and masks
        upscaled to the original size as logits (B, M, H, W) (None with
        ``upscale=False``: call :meth:`upscale` on the ones you keep); M = 3 if
        multimask else 1.
        """
        sig = prompts[0].signature
        if any(p.signature != sig for p in prompts):
            raise ValueError("decode_batch needs prompts with one signature")
        n_points, has_box, has_mask = sig
        points = boxes = masks = None
        frame = self.family.to_input_frame
        if n_points:
            coords = frame(np.stack([p.points for p in prompts]), emb.input_size, emb.original_size, self.device)
            labels = np.stack([p.labels for p in prompts])
            points = (coords, torch.as_tensor(labels, dtype=torch.int, device=self.device))
        if has_box:
            corners = np.stack([p.box.reshape(2, 2) for p in prompts])
            boxes = frame(corners, emb.input_size, emb.original_size, self.device).reshape(-1, 4)
        if has_mask:
            m = np.stack([self._mask_input(p, emb) for p in prompts])
            masks = torch.as_tensor(m, dtype=torch.float, device=self.device)
        prompt_encoder = getattr(self.learned, "prompt_encoder", None)  # None: the model's own
        mask_decoder = getattr(self.learned, "mask_decoder", None)
        own_decoder = getattr(self.encoder, "decode", None)  # an exported model brings its decoder
        if own_decoder is not None:
            low_all, iou_all = own_decoder(self.model, emb.features, points, boxes, masks)
            pick = slice(1, None) if multimask else slice(0, 1)
            low_res, iou = low_all[:, pick], iou_all[:, pick]
        else:
            low_res, iou = self.family.decode(self.model, emb, points, boxes, masks, multimask,
                                              prompt_encoder, mask_decoder, fast=self.fast_decoder)
        return low_res, iou, self.upscale(low_res, emb) if upscale else None

    @torch.no_grad()
    def upscale(self, low_res: torch.Tensor, emb: Embedding) -> torch.Tensor:
        """Low-res logits (..., h, w) -> logits at the original image size (..., H, W), as SamPredictor does."""
        shape = low_res.shape
        flat = low_res.reshape(-1, 1, *shape[-2:])
        up = self.family.upscale(self.model, flat, emb)
        return up.reshape(*shape[:-2], *up.shape[-2:])

    def decode(
        self,
        embedding: Embedding,
        prompts: Prompt | Sequence[Prompt],
        *,
        multimask: MultimaskArg = "auto",
        best_only: bool = True,
        batch_size: int | None = None,
    ) -> Result | list[Result]:
        """Masks for one object (a :class:`Prompt`) or many (a list: one result each) of an embedded image.

        Prompts are checked against the image's size (``embedding.original_size``);
        the arguments are those of :meth:`predict`.
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
            p.validate(*embedding.original_size)
        results: list[Result | None] = [None] * len(plist)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, p in enumerate(plist):
            mm = p.is_ambiguous if multimask == "auto" else bool(multimask)
            groups[(p.signature, mm)].append(i)
        for (_, mm), idx in groups.items():
            for start in range(0, len(idx), batch_size):
                chunk = idx[start : start + batch_size]
                low, iou, _ = self.decode_batch(embedding, [plist[i] for i in chunk], mm, upscale=False)
                if best_only and low.shape[1] > 1:  # choose on the predicted IoU, then upscale only the choice
                    k = iou.argmax(1)
                    rows = torch.arange(len(chunk), device=low.device)
                    low, iou = low[rows, k][:, None], iou[rows, k][:, None]
                masks = (self.upscale(low, embedding) > self.mask_threshold).cpu().numpy()
                low_np, iou_np = self.family.returned_low_res(low).cpu().numpy(), iou.cpu().numpy()
                for j, i in enumerate(chunk):
                    results[i] = Result(masks[j], iou_np[j], low_np[j], plist[i])
        return results[0] if single else results  # type: ignore[return-value]

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
            prompts: one prompt, or a list of prompts, in original-image pixels
                (continuous coordinates: points and boxes lie in [0, W] x [0, H]).
            multimask: ``True``: three candidate masks; ``False``: one;
                ``"auto"``: three only for ambiguous prompts (a single point).
            best_only: with three candidates, keep only the one of highest
                predicted IoU (else all three, in the model's order).
            batch_size: objects per decoder call; default 4 on CPU (larger
                batches thrash the cache there: SAM's decoder copies the image
                embedding per object) and 64 on accelerators.
        """
        if isinstance(prompts, (list, tuple)) and not prompts:
            raise PromptError("no prompts given; for promptless segmentation use segment_everything()")
        rgb = to_rgb_uint8(image, self.normalize)
        for p in [prompts] if isinstance(prompts, Prompt) else prompts:
            if isinstance(p, Prompt):
                p.validate(*rgb.shape[:2])  # before the encoder runs: bad prompts cost nothing
        return self.decode(self._embed_rgb(rgb), prompts, multimask=multimask, best_only=best_only,
                           batch_size=batch_size)

    def segment_everything(self, image: ImageLike, **kwargs) -> Result:
        """Promptless "segment everything": see :func:`samprompt.automatic.segment_everything`."""
        from .automatic import segment_everything

        return segment_everything(self, image, **kwargs)
