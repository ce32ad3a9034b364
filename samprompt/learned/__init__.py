"""Learned prompts for a frozen SAM: pixel prompts, prompt tokens, generated tokens."""

from .config import (
    METHODS,
    FourierConfig,
    GeneratedConfig,
    PixelPadConfig,
    PromptConfig,
    TokenConfig,
    make_config,
)
from .prompt import LearnedPrompt

__all__ = [
    "METHODS",
    "FourierConfig",
    "GeneratedConfig",
    "LearnedPrompt",
    "PixelPadConfig",
    "PromptConfig",
    "TokenConfig",
    "make_config",
]
