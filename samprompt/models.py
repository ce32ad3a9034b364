"""Model registry, checksummed downloads and safe loading of checkpoints of every SAM family.

A registry maps a name to a family (SAM, MedSAM, SAM-HQ, SAM 2 / 2.1), its
architecture (the keyword arguments of :func:`build_sam`, or SAM 2's config
file), and, for the official models, the checkpoint URL and its sha256 (where
the authors publish none, the sha256 of the first download is recorded and
checked at every later load). The built-in ``tiny`` model ships with the
package as safetensors. Checkpoints given by path have their family and size
read from their keys and shapes (:mod:`samprompt.families.build`).

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
    """A registry entry: a family, an architecture and where its weights come from.

    ``arch`` is the ViT of the SAM, MedSAM and SAM-HQ families; SAM 2 models have
    ``config`` (the ``sam2`` package's config file) instead. ``manual`` says how to
    get weights that cannot be downloaded by a plain URL.
    """

    name: str
    arch: Architecture | None
    url: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    packaged: str | None = None  # file name under samprompt/weights/
    description: str = ""
    family: str = "sam"
    config: str | None = None
    manual: str | None = None

    @property
    def img_size(self) -> int:
        """The encoder's input side in pixels."""
        return self.arch.img_size if self.arch is not None else 1024


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
    "medsam_vit_b": ModelSpec(
        "medsam_vit_b",
        Architecture(768, 12, 12, (2, 5, 8, 11)),
        description="MedSAM: SAM ViT-B fine-tuned on 1.5 M medical image-mask pairs (bowang-lab, Apache-2.0)",
        family="medsam",
        manual="MedSAM's authors publish medsam_vit_b.pth on Google Drive only: download it from "
               "https://drive.google.com/drive/folders/1ETWmi4AiniJeWOt6HAsYgTjYv_fkgzoN and pass its path "
               "with --model PATH --family medsam, or put it at {path}",
    ),
}
_HQ = "https://huggingface.co/lkeab/hq-sam/resolve/main/"
for _vit in ("vit_b", "vit_l", "vit_h"):
    REGISTRY[f"sam_hq_{_vit}"] = ModelSpec(
        f"sam_hq_{_vit}", REGISTRY[_vit].arch, _HQ + f"sam_hq_{_vit}.pth", family="sam-hq",
        description=f"SAM-HQ ViT-{_vit[-1].upper()}: sharper boundaries (SysCV, Apache-2.0)")
_SAM2 = "https://dl.fbaipublicfiles.com/segment_anything_2/"
for _version, _date in (("sam2.1", "092824"), ("sam2", "072824")):
    for _size, _short in (("tiny", "t"), ("small", "s"), ("base_plus", "b+"), ("large", "l")):
        _n = f"{_version}_hiera_{_size}"
        REGISTRY[_n] = ModelSpec(
            _n, None, f"{_SAM2}{_date}/{_n}.pt", family="sam2",
            config=f"configs/{_version}/{_version}_hiera_{_short}.yaml",
            description=f"SAM {_version[3:]} Hiera {_size.replace('_plus', '+')} (Meta AI, Apache-2.0)")


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
    if spec.url is None:
        return cache_dir() / f"{name}.pth"
    return cache_dir() / spec.url.rsplit("/", 1)[-1]


def _recorded_file() -> Path:
    return cache_dir() / "sha256.json"


def recorded_sha256(name: str) -> str | None:
    """The sha256 recorded at the first download of ``name`` (models whose authors publish none)."""
    import json

    try:
        return json.loads(_recorded_file().read_text()).get(name)
    except (OSError, ValueError):
        return None


def _record_sha256(name: str, digest: str) -> None:
    import json

    from .io import atomic_write_text

    path = _recorded_file()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    known[name] = digest
    atomic_write_text(path, json.dumps(known, indent=1, sort_keys=True) + "\n")


def expected_sha256(name: str) -> str | None:
    """The sha256 the weights of ``name`` must have: published, else recorded at the first download."""
    spec = _spec(name)
    return spec.sha256 or recorded_sha256(name)


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
    if spec.url is None:
        raise DownloadError(f"{name} cannot be downloaded by samprompt: "
                            + (spec.manual or "no address is known").format(path=dest))
    want = expected_sha256(name)
    if dest.exists() and not force:
        if want is not None and sha256_file(dest) == want:
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
        if spec.sha256 is not None and digest.hexdigest() != spec.sha256:
            raise DownloadError(
                f"sha256 mismatch for {name}: expected {spec.sha256}, got {digest.hexdigest()}; "
                "the download was removed"
            )
        if spec.sha256 is None:  # the authors publish none: trust the first download, check every later one
            first = recorded_sha256(name)
            if first is not None and first != digest.hexdigest() and not force:
                raise DownloadError(f"{name} from {spec.url} has sha256 {digest.hexdigest()}, not the {first} "
                                    "recorded at its first download; the download was removed (--force accepts it)")
            _record_sha256(name, digest.hexdigest())
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
            detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            if "weights_only" in detail or "torch.load" in detail:  # torch's advice to unpickle: not for us
                detail = "unreadable pickle"
            raise CheckpointError(f"cannot read checkpoint {path}: corrupt or not a PyTorch file ({detail})") from exc
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
    known = {s.arch.encoder_embed_dim: s.arch for s in REGISTRY.values() if s.arch is not None}
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


def load_model(name_or_path: str | Path = "tiny", *, device: str | torch.device = "cpu", expect: str | None = None,
               family: str | None = None):
    """Load a model of any family by registry name or checkpoint path, safely.

    Args:
        name_or_path: a registry name (``"tiny"``, ``"vit_b"``, ``"sam2.1_hiera_tiny"``,
            ``"sam_hq_vit_b"``, ``"medsam_vit_b"``; ``samprompt weights list``) or a path to a
            ``.pth``/``.pt``/``.safetensors`` state dict (SAM 2's ``{"model": ...}`` too).
        device: where to put the model.
        expect: optional registry name whose family and architecture the checkpoint must have.
        family: ``"medsam"`` for a MedSAM checkpoint given by path (its keys are SAM's).

    The family and size of a checkpoint come from its keys and shapes. Registry
    models other than ``tiny`` must have been downloaded first (``samprompt
    weights download NAME``); this function never reaches the network. The
    returned model carries ``model.samprompt_id`` (name + sha256 prefix, used by
    the embedding cache and by learned prompts) and ``model.samprompt_family``.
    """
    from .families.build import build_hq, build_sam2_model, describe_sam2, detect_family, sam2_config

    name = str(name_or_path)
    spec = None
    if name in REGISTRY:
        spec = REGISTRY[name]
        path = weights_path(name)
        if not path.exists():
            if spec.packaged:
                raise CheckpointError(f"the packaged {name!r} weights are missing from {path}; reinstall samprompt")
            if spec.url is None:
                raise CheckpointError(f"weights for {name!r} are not on this machine: "
                                      + (spec.manual or "").format(path=path))
            raise CheckpointError(
                f"weights for {name!r} are not downloaded; run: samprompt weights download {name}"
            )
        expect = expect or name
    else:
        path = Path(name_or_path)
        if not path.exists() and not path.suffix and len(path.parts) == 1:
            raise CheckpointError(f"unknown model {name!r}: not one of {sorted(REGISTRY)} and no such checkpoint file")
    state = read_state_dict(path)
    found = detect_family(state)
    want = _spec(expect) if expect is not None else None
    if family is not None and family not in ("sam", "medsam", "sam-hq", "sam2"):
        raise CheckpointError(f"unknown family {family!r}; known: sam, medsam, sam-hq, sam2")
    if family == "medsam" and found != "sam":
        raise CheckpointError(f"{path} holds a {_FAMILY_WORDS[found]} checkpoint; MedSAM is a SAM ViT-B")
    if want is not None and _base_family(want.family) != found:
        raise CheckpointError(f"{path} holds a {_FAMILY_WORDS[found]} checkpoint, not the "
                              f"{_FAMILY_WORDS[_base_family(want.family)]} that {expect!r} is")
    if found == "sam2":
        config = sam2_config(state)
        if want is not None and want.config != config:
            raise CheckpointError(f"{path} holds a {describe_sam2(config)}, not the {describe_sam2(want.config)} "
                                  f"that {expect!r} is")
        model = build_sam2_model(config)
    else:
        arch = detect_architecture(state)
        if want is not None:
            assert want.arch is not None
            if _shape_key(arch) != _shape_key(want.arch):
                raise CheckpointError(
                    f"{path} holds a {_FAMILY_WORDS[found]} with {arch.encoder_embed_dim}-d encoder "
                    f"x{arch.encoder_depth} at {arch.img_size}px, not the {expect!r} architecture "
                    f"({want.arch.encoder_embed_dim}-d x{want.arch.encoder_depth} at {want.arch.img_size}px)"
                )
            arch = want.arch
        model = build_hq(arch) if found == "sam-hq" else build_sam(arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit the detected architecture: {exc}") from exc
    digest = _checked_digest(spec, path)
    model.samprompt_id = f"{spec.name if spec else path.stem}:{digest[:16]}"  # type: ignore[attr-defined]
    model.samprompt_family = family or (spec.family if spec else found)  # type: ignore[attr-defined]
    return model.to(device).eval()


_FAMILY_WORDS = {"sam": "SAM (ViT)", "sam-hq": "SAM-HQ", "sam2": "SAM 2"}


def _base_family(family: str) -> str:
    return "sam" if family == "medsam" else family


def _checked_digest(spec: ModelSpec | None, path: Path) -> str:
    """The file's sha256; a registry model whose sha256 was recorded at download must still have it."""
    if spec is not None and spec.sha256:
        return spec.sha256  # checked at download; hashing a GB at every load would cost seconds
    digest = sha256_file(path)
    first = recorded_sha256(spec.name) if spec is not None else None
    if first is not None and first != digest:
        raise CheckpointError(f"{path} has changed since it was downloaded (sha256 {digest[:16]}..., recorded "
                              f"{first[:16]}...); run: samprompt weights download {spec.name} --force")
    return digest


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


def checkpoint_family(name_or_path: str | Path, family: str | None = None) -> str:
    """The family :func:`load_model` gives a model (``sam``, ``medsam``, ``sam-hq``, ``sam2``), from its file alone."""
    from .families.build import detect_family

    name = str(name_or_path)
    if family is not None:
        return family
    if name in REGISTRY:
        return REGISTRY[name].family
    return detect_family(read_state_dict(name_or_path))


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
    "checkpoint_family",
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

