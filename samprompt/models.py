"""Model registry, checksummed downloads and safe loading of SAM checkpoints.

Every model is a :class:`segment_anything.modeling.Sam`. A registry maps a name
to an architecture (the keyword arguments of :func:`build_sam`), and, for the
official models, the checkpoint URL and its sha256. The built-in ``tiny`` model
ships with the package as safetensors.

Checkpoints are only ever read with ``torch.load(weights_only=True)`` or
safetensors: loading never unpickles arbitrary objects.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from .errors import CheckpointError, DownloadError

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class Architecture:
    """The hyper-parameters that fix a SAM's state-dict shapes.

    ``img_size`` is the encoder input side in pixels; the image embedding is
    ``img_size // patch_size`` on a side, the low-res mask logits four times that.
    """

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    img_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    mask_in_chans: int = 16

    @property
    def embedding_size(self) -> int:
        return self.img_size // self.patch_size


def build_sam(arch: Architecture) -> Sam:
    """Build a randomly initialised SAM of ``arch`` in eval mode (fp32, CPU)."""
    e = arch.embedding_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=arch.encoder_depth,
            embed_dim=arch.encoder_embed_dim,
            img_size=arch.img_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=arch.encoder_num_heads,
            patch_size=arch.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=arch.encoder_global_attn_indexes,
            window_size=arch.window_size,
            out_chans=arch.prompt_embed_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=arch.prompt_embed_dim,
            image_embedding_size=(e, e),
            input_image_size=(arch.img_size, arch.img_size),
            mask_in_chans=arch.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2,
                embedding_dim=arch.prompt_embed_dim,
                mlp_dim=arch.decoder_mlp_dim,
                num_heads=arch.decoder_num_heads,
            ),
            transformer_dim=arch.prompt_embed_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=arch.prompt_embed_dim,
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )
    return sam.eval()


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: an architecture and where its weights come from."""

    name: str
    arch: Architecture
    url: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    packaged: str | None = None  # file name under samprompt/weights/
    description: str = ""


TINY_ARCH = Architecture(
    encoder_embed_dim=192,
    encoder_depth=6,
    encoder_num_heads=6,
    encoder_global_attn_indexes=(2, 5),
    img_size=256,
    patch_size=16,
    window_size=8,
    prompt_embed_dim=128,
    decoder_mlp_dim=512,
    decoder_num_heads=4,
    mask_in_chans=16,
)

_FB = "https://dl.fbaipublicfiles.com/segment_anything/"
REGISTRY: dict[str, ModelSpec] = {
    "vit_b": ModelSpec(
        "vit_b",
        Architecture(768, 12, 12, (2, 5, 8, 11)),
        _FB + "sam_vit_b_01ec64.pth",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        375_042_383,
        description="official SAM ViT-B (Meta AI, Apache-2.0)",
    ),
    "vit_l": ModelSpec(
        "vit_l",
        Architecture(1024, 24, 16, (5, 11, 17, 23)),
        _FB + "sam_vit_l_0b3195.pth",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        1_249_524_607,
        description="official SAM ViT-L (Meta AI, Apache-2.0)",
    ),
    "vit_h": ModelSpec(
        "vit_h",
        Architecture(1280, 32, 16, (7, 15, 23, 31)),
        _FB + "sam_vit_h_4b8939.pth",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        2_564_550_879,
        description="official SAM ViT-H (Meta AI, Apache-2.0)",
    ),
    "tiny": ModelSpec(
        "tiny",
        TINY_ARCH,
        packaged="tiny.safetensors",
        description="built-in 256-px SAM trained by samprompt on synthetic scenes",
    ),
}


# ------------------------------------------------------------------ cache dir


def cache_dir() -> Path:
    """Where downloaded weights live: ``$SAMPROMPT_HOME`` or the user cache dir."""
    env = os.environ.get("SAMPROMPT_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("samprompt"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def weights_path(name: str) -> Path:
    """Where the weights of registry entry ``name`` are (or would be) on disk."""
    spec = _spec(name)
    if spec.packaged:
        return Path(str(resources.files("samprompt") / "weights" / spec.packaged))
    assert spec.url is not None
    return cache_dir() / spec.url.rsplit("/", 1)[-1]


def _spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise CheckpointError(f"unknown model {name!r}; known models: {sorted(REGISTRY)}") from None


def download(
    name: str,
    *,
    force: bool = False,
    progress: bool = True,
    opener: Callable[[str], Any] = urllib.request.urlopen,
) -> Path:
    """Download the weights of ``name`` into :func:`cache_dir` and check the sha256.

    The file is written to a temporary name and moved into place only when its
    sha256 matches, so a failed or corrupt download never leaves a file behind.
    ``opener`` (``urlopen`` by default) is injectable for tests.
    """
    spec = _spec(name)
    if spec.packaged:
        return weights_path(name)
    dest = weights_path(name)
    if dest.exists() and not force:
        if sha256_file(dest) == spec.sha256:
            return dest
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name, suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        from tqdm.auto import tqdm

        with os.fdopen(fd, "wb") as out, opener(spec.url) as response:
            total = int(response.headers.get("Content-Length", 0) or 0) or spec.size_bytes
            with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        if digest.hexdigest() != spec.sha256:
            raise DownloadError(
                f"sha256 mismatch for {name}: expected {spec.sha256}, got {digest.hexdigest()}; "
                "the download was removed"
            )
        os.replace(tmp, dest)
    except DownloadError:
        raise
    except Exception as exc:
        raise DownloadError(f"could not download {name} from {spec.url}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# -------------------------------------------------------------------- loading


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely (safetensors, or torch.load with weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # garbage bytes, not objects
            raise CheckpointError(f"cannot read checkpoint {path}: corrupt or not a PyTorch file ({exc})") from exc
        raise CheckpointError(
            f"{path} is not a plain state dict of tensors: it holds other Python objects, and samprompt "
            "refuses to unpickle those for safety; save the model's state_dict() (or safetensors) instead"
        ) from exc
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # training checkpoints of samprompt wrap the weights
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return state


def detect_architecture(state: dict[str, torch.Tensor]) -> Architecture:
    """Infer the :class:`Architecture` of a SAM state dict from its tensor shapes."""
    try:
        patch = state["image_encoder.patch_embed.proj.weight"]  # (E, 3, p, p)
        pos = state["image_encoder.pos_embed"]  # (1, g, g, E)
        embed_dim, patch_size, grid = patch.shape[0], patch.shape[-1], pos.shape[1]
        depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("image_encoder.blocks."))
        # Windowed blocks have rel-pos tables of 2*window-1 rows, global ones 2*grid-1.
        rel = [state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape for i in range(depth)]
        global_idx = tuple(i for i, s in enumerate(rel) if s[0] == 2 * grid - 1)
        windowed = [s for s in rel if s[0] != 2 * grid - 1]
        window = (windowed[0][0] + 1) // 2 if windowed else 14
        head_dim = rel[0][1]
        prompt_dim = state["mask_decoder.iou_token.weight"].shape[1]
        mlp_dim = state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]
        mask_in = state["prompt_encoder.mask_downscaling.0.weight"].shape[0] * 4
    except (KeyError, IndexError, ValueError) as exc:
        raise CheckpointError(f"not a SAM checkpoint (missing or odd key: {exc})") from exc
    known = {s.arch.encoder_embed_dim: s.arch for s in REGISTRY.values()}
    heads = embed_dim // head_dim
    dec_heads = known[embed_dim].decoder_num_heads if embed_dim in known else 8
    return Architecture(
        encoder_embed_dim=embed_dim,
        encoder_depth=depth,
        encoder_num_heads=heads,
        encoder_global_attn_indexes=global_idx,
        img_size=grid * patch_size,
        patch_size=patch_size,
        window_size=window,
        prompt_embed_dim=prompt_dim,
        decoder_mlp_dim=mlp_dim,
        decoder_num_heads=dec_heads,
        mask_in_chans=mask_in,
    )


def load_model(name_or_path: str | Path = "tiny", *, device: str | torch.device = "cpu", expect: str | None = None) -> Sam:
    """Load a SAM by registry name or checkpoint path, safely.

    Args:
        name_or_path: ``"tiny"``, ``"vit_b"``, ``"vit_l"``, ``"vit_h"`` or a path to a
            ``.pth``/``.pt``/``.safetensors`` state dict.
        device: where to put the model.
        expect: optional registry name whose architecture the checkpoint must have.

    Registry models other than ``tiny`` must have been downloaded first
    (``samprompt weights download NAME``); this function never reaches the network.
    The returned model carries ``model.samprompt_id`` (name + sha256 prefix), used
    by the embedding cache and by learned prompts.
    """
    name = str(name_or_path)
    if name in REGISTRY:
        spec = REGISTRY[name]
        path = weights_path(name)
        if not path.exists():
            if spec.packaged:
                raise CheckpointError(f"the packaged {name!r} weights are missing from {path}; reinstall samprompt")
            raise CheckpointError(
                f"weights for {name!r} are not downloaded; run: samprompt weights download {name}"
            )
        expect = expect or name
    else:
        path = Path(name_or_path)
        spec = None
        if not path.exists() and not path.suffix and len(path.parts) == 1:
            raise CheckpointError(f"unknown model {name!r}: not one of {sorted(REGISTRY)} and no such checkpoint file")
    state = read_state_dict(path)
    arch = detect_architecture(state)
    if expect is not None:
        want = _spec(expect).arch
        if _shape_key(arch) != _shape_key(want):
            raise CheckpointError(
                f"{path} holds a SAM with {arch.encoder_embed_dim}-d encoder x{arch.encoder_depth} "
                f"at {arch.img_size}px, not the {expect!r} architecture "
                f"({want.encoder_embed_dim}-d x{want.encoder_depth} at {want.img_size}px)"
            )
        arch = want
    model = build_sam(arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit the detected architecture: {exc}") from exc
    digest = spec.sha256 if spec is not None and spec.sha256 else sha256_file(path)
    model.samprompt_id = f"{spec.name if spec else path.stem}:{digest[:16]}"  # type: ignore[attr-defined]
    return model.to(device).eval()


def checkpoint_id(name_or_path: str | Path) -> str:
    """The id :func:`load_model` gives a model (``name:sha256-prefix``), from its file alone."""
    name = str(name_or_path)
    if name in REGISTRY:
        spec = REGISTRY[name]
        if spec.sha256:
            return f"{name}:{spec.sha256[:16]}"
        path = weights_path(name)
    else:
        path = Path(name_or_path)
        spec = None
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return f"{spec.name if spec else path.stem}:{sha256_file(path)[:16]}"


def _shape_key(arch: Architecture) -> tuple:
    return (arch.encoder_embed_dim, arch.encoder_depth, arch.img_size, arch.patch_size, arch.prompt_embed_dim)


def model_id(model: Sam) -> str:
    """A stable id of a model's weights: set by :func:`load_model`, else a hash of the weights."""
    mid = getattr(model, "samprompt_id", None)
    if mid is None:
        h = hashlib.sha256()
        for k, v in sorted(model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        mid = f"unnamed:{h.hexdigest()[:16]}"
        model.samprompt_id = mid  # type: ignore[attr-defined]
    return mid


def save_safetensors(model: Sam, path: str | Path) -> Path:
    """Save a SAM's state dict as safetensors (atomically)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp))
    shutil.move(tmp, path)
    return path


__all__ = [
    "Architecture",
    "ModelSpec",
    "REGISTRY",
    "TINY_ARCH",
    "build_sam",
    "cache_dir",
    "checkpoint_id",
    "detect_architecture",
    "download",
    "load_model",
    "model_id",
    "read_state_dict",
    "save_safetensors",
    "sha256_file",
    "weights_path",
]

