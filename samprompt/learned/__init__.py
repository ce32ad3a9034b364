"""Learned prompts for a frozen SAM: pixel prompts, prompt tokens, generated tokens."""

from .config import (
    BASELINES,
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
