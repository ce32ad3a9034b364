"""One configuration dataclass per learned-prompt method (after PEFT's config-per-method)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..errors import ConfigError

METHODS = ("pixel-pad", "pixel-fourier", "vpt-shallow", "vpt-deep", "vpt-generated")
BASELINES = ("decoder-ft", "full-ft")

# Default learning rates (AdamW, one-cycle): prompts tolerate large steps, weights need small ones.
# Picked on validation mIoU in benchmarks/learned_prompts.py (token methods from 3e-3/1e-2/3e-2,
# full-ft from 3e-5/1e-4/3e-4).
DEFAULT_LR = {"pixel-pad": 3e-2, "pixel-fourier": 3e-2, "vpt-shallow": 3e-2, "vpt-deep": 3e-2,
              "vpt-generated": 3e-2, "decoder-ft": 3e-4, "full-ft": 1e-4}


@dataclass
class PromptConfig:
    """Base: the method name and the initialisation."""

    method: str = field(default="", metadata={"help": "one of " + ", ".join(METHODS)})
    init: str = field(default="zero", metadata={"help": "initial values: 'zero' (no effect until trained) or "
                                                        "'normal'", "choices": ("zero", "normal")})
    init_std: float = field(default=0.02, metadata={"help": "std of the 'normal' init"})

    def __post_init__(self) -> None:
        if self.method not in METHODS + BASELINES:
            raise ConfigError(f"method must be one of {METHODS + BASELINES}, got {self.method!r}")
        if self.init not in ("zero", "normal"):
            raise ConfigError(f"init must be 'zero' or 'normal', got {self.init!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "PromptConfig":
        cls = CONFIGS[d["method"]]
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class PixelPadConfig(PromptConfig):
    method: str = "pixel-pad"
    width: int = field(default=16, metadata={"help": "border width in encoder-input pixels"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.width < 1:
            raise ConfigError(f"width must be >= 1, got {self.width}")


@dataclass
class FourierConfig(PromptConfig):
    method: str = "pixel-fourier"


@dataclass
class TokenConfig(PromptConfig):
    """VPT: ``tokens`` learned prompt tokens per prompted encoder block.

    ``depth``: how many blocks get tokens, from the first (VPT's depth
    ablation); vpt-deep prompts every block unless told, vpt-shallow the first.

    ``attention='gated'`` attends to the prompt keys/values with their own
    softmax added through a zero-initialised per-head gate (the untrained prompt
    leaves the model unchanged); ``'joint'`` puts them in the same softmax as the
    image tokens with a zero relative-position bias (VPT-deep / E2VPT style).

    ``kv='projected'`` (VPT) passes each token through the block's frozen
    ``norm1`` and ``qkv`` to get its key and value; ``'direct'`` learns the keys
    and values themselves (E2VPT's key-value prompts: twice the parameters per
    token, and values no longer capped by the LayerNorm), starting from the
    projections of the random tokens.

    Tokens start random (``init='normal'``): behind the zero gate they still
    leave the model unchanged, and zero tokens would be identical, get identical
    gradients and stay identical, so P tokens would act as one (measured on the
    scratches task: test mIoU 0.467 with zero tokens, 0.482 with random ones).
    """

    method: str = "vpt-deep"
    init: str = field(default="normal", metadata={"help": "initial tokens: 'normal' or 'zero'",
                                                  "choices": ("zero", "normal")})
    tokens: int = field(default=32, metadata={"help": "prompt tokens per block"})
    attention: str = field(default="gated", metadata={
        "help": "'gated': own softmax behind a zero-initialised gate; 'joint': one softmax with the image tokens",
        "choices": ("gated", "joint")})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the prompt tokens while training"})
    kv: str = field(default="projected", metadata={
        "help": "'projected': tokens through the block's frozen qkv; 'direct': keys and values learned directly",
        "choices": ("projected", "direct")})
    depth: int | None = field(default=None, metadata={
        "help": "prompted blocks, counted from the first (default: every block for vpt-deep, 1 for vpt-shallow)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.depth is not None and self.depth < 1:
            raise ConfigError(f"depth must be >= 1, got {self.depth}")
        if self.method == "vpt-shallow" and self.depth not in (None, 1):
            raise ConfigError(f"vpt-shallow prompts the first block only; use vpt-deep with depth={self.depth}")
        if self.kv not in ("projected", "direct"):
            raise ConfigError(f"kv must be 'projected' or 'direct', got {self.kv!r}")
        if self.tokens < 1:
            raise ConfigError(f"tokens must be >= 1, got {self.tokens}")
        if self.attention not in ("gated", "joint"):
            raise ConfigError(f"attention must be 'gated' or 'joint', got {self.attention!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    def prompted_blocks(self, n_blocks: int) -> list[int]:
        """Indices of the encoder blocks that get tokens, for an encoder of ``n_blocks`` blocks."""
        depth = 1 if self.method == "vpt-shallow" else self.depth or n_blocks
        if depth > n_blocks:
            raise ConfigError(f"depth {depth} is more than the encoder's {n_blocks} blocks")
        return list(range(depth))


@dataclass
class GeneratedConfig(TokenConfig):
    """VPT-generated: a small network maps the image's pooled patch features to the tokens."""

    method: str = "vpt-generated"
    hidden: int = field(default=64, metadata={"help": "hidden width of the generator"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kv != "projected":
            raise ConfigError("vpt-generated makes tokens, so it needs kv='projected'")


@dataclass
class FinetuneConfig(PromptConfig):
    """Baselines: fine-tune SAM's mask decoder (``decoder-ft``) or every weight (``full-ft``).

    The tuned weights are a copy held by the prompt; the original model stays untouched.
    ``only``: name prefixes separated by ``,`` or ``+`` (e.g. ``"image_encoder.neck"``) to tune just
    those weights of the copy, for finding where a gain comes from.
    """

    method: str = "decoder-ft"
    only: str = field(default="", metadata={"help": "tune only weights whose name starts with one of these"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in BASELINES:
            raise ConfigError(f"FinetuneConfig is for {BASELINES}, got {self.method!r}")


CONFIGS = {
    "pixel-pad": PixelPadConfig,
    "pixel-fourier": FourierConfig,
    "vpt-shallow": TokenConfig,
    "vpt-deep": TokenConfig,
    "vpt-generated": GeneratedConfig,
    "decoder-ft": FinetuneConfig,
    "full-ft": FinetuneConfig,
}


def make_config(method: str, **kwargs) -> PromptConfig:
    """The config dataclass of ``method`` with ``kwargs`` (unknown keys are a :class:`ConfigError`)."""
    if method not in CONFIGS:
        raise ConfigError(f"method must be one of {METHODS + BASELINES}, got {method!r}")
    cls = CONFIGS[method]
    unknown = set(kwargs) - {f.name for f in fields(cls)}
    if unknown:
        raise ConfigError(f"{method} has no option {', '.join(sorted(unknown))}; "
                          f"its options: {', '.join(f.name for f in fields(cls) if f.name != 'method')}")
    return cls(method=method, **kwargs)
