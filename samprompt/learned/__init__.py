"""Learned prompts for a frozen SAM: pixel prompts, prompt tokens, generated tokens."""

from .config import (
    BASELINES,
    DEFAULT_LR,
    METHODS,
    FinetuneConfig,
    FourierConfig,
    GeneratedConfig,
    PixelPadConfig,
    PromptConfig,
    TokenConfig,
    make_config,
)
from .prompt import LearnedPrompt

__all__ = [
    "BASELINES",
    "DEFAULT_LR",
    "FinetuneConfig",
    "METHODS",
    "FourierConfig",
    "GeneratedConfig",
    "LearnedPrompt",
    "PixelPadConfig",
    "PromptConfig",
    "TokenConfig",
    "make_config",
]
