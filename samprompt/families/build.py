"""Telling a checkpoint's family and size from its keys and shapes, and building the empty model.

The reference packages build the modules (``segment_anything_hq.modeling`` for
SAM-HQ, ``sam2.build_sam.build_sam2`` with the package's own config files for
SAM 2); samprompt only picks which, from the state dict alone.
"""

from __future__ import annotations

import warnings
from functools import partial

import torch

from ..errors import CheckpointError

#: SAM 2 sizes by (Hiera embedding width, number of blocks): the config file's short name
SAM2_SIZES = {(96, 12): "t", (96, 16): "s", (112, 24): "b+", (144, 48): "l"}
SAM2_SIZE_NAMES = {"t": "tiny", "s": "small", "b+": "base+", "l": "large"}


def detect_family(state: dict[str, torch.Tensor]) -> str:
    """``"sam2"``, ``"sam-hq"`` or ``"sam"`` from a state dict's keys (MedSAM's keys are SAM's)."""
    if any(k.startswith("image_encoder.trunk.") for k in state):
        return "sam2"
    if "mask_decoder.hf_token.weight" in state:
        return "sam-hq"
    return "sam"


def sam2_config(state: dict[str, torch.Tensor]) -> str:
    """The ``sam2`` package's config file for a SAM 2 / 2.1 state dict (version and size from its shapes)."""
    try:
        width = state["image_encoder.trunk.patch_embed.proj.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"not a SAM 2 checkpoint (missing {exc})") from exc
    blocks = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("image_encoder.trunk.blocks."))
    size = SAM2_SIZES.get((int(width), blocks))
    if size is None:
        known = ", ".join(f"{SAM2_SIZE_NAMES[s]} ({w}-d x{b})" for (w, b), s in SAM2_SIZES.items())
        raise CheckpointError(f"a SAM 2 Hiera of width {width} with {blocks} blocks is none of the released "
                              f"sizes: {known}")
    version = "sam2.1" if "no_obj_embed_spatial" in state else "sam2"
    return f"configs/{version}/{version}_hiera_{size}.yaml"


def describe_sam2(config: str) -> str:
    """``"SAM 2.1 Hiera tiny"`` for ``configs/sam2.1/sam2.1_hiera_t.yaml``."""
    stem = config.rsplit("/", 1)[-1].removesuffix(".yaml")
    version, size = stem.split("_hiera_")
    return f"SAM {version[3:]} Hiera {SAM2_SIZE_NAMES[size]}"


def build_sam2_model(config: str, device: str | torch.device = "cpu"):
    """An empty (randomly initialised) SAM 2 of ``config``, in eval mode, built by ``sam2`` itself."""
    try:
        from sam2.build_sam import build_sam2
    except ImportError as exc:
        raise CheckpointError("SAM 2 checkpoints need the sam2 package: SAM2_BUILD_CUDA=0 pip install "
                              "--no-build-isolation sam2 (see docs/models.md)") from exc
    return build_sam2(config, ckpt_path=None, device=str(device), mode="eval")


def build_hq(arch):
    """An empty SAM-HQ of a SAM :class:`~samprompt.models.Architecture`, built from ``segment_anything_hq``'s modules."""
    try:
        with warnings.catch_warnings():  # its bundled TinyViT re-registers timm's models, with a warning each
            warnings.simplefilter("ignore")
            from segment_anything_hq.modeling import (
                ImageEncoderViT,
                MaskDecoderHQ,
                PromptEncoder,
                Sam,
                TwoWayTransformer,
            )
    except ImportError as exc:
        raise CheckpointError("SAM-HQ checkpoints need the segment-anything-hq package: "
                              "pip install segment-anything-hq") from exc
    e = arch.embedding_size
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=arch.encoder_depth, embed_dim=arch.encoder_embed_dim, img_size=arch.img_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=arch.encoder_num_heads,
            patch_size=arch.patch_size, qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=arch.encoder_global_attn_indexes, window_size=arch.window_size,
            out_chans=arch.prompt_embed_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=arch.prompt_embed_dim, image_embedding_size=(e, e),
            input_image_size=(arch.img_size, arch.img_size), mask_in_chans=arch.mask_in_chans,
        ),
        mask_decoder=MaskDecoderHQ(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=arch.prompt_embed_dim,
                                          mlp_dim=arch.decoder_mlp_dim, num_heads=arch.decoder_num_heads),
            transformer_dim=arch.prompt_embed_dim, iou_head_depth=3, iou_head_hidden_dim=arch.prompt_embed_dim,
            vit_dim=arch.encoder_embed_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()
