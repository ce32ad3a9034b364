"""The samprompt error hierarchy: catch :class:`SampromptError` to catch them all."""

from __future__ import annotations


class SampromptError(Exception):
    """Root of every error samprompt raises on purpose."""


class PromptError(SampromptError, ValueError):
    """A prompt is malformed or does not fit the image (points outside, bad box, ...)."""


class ImageError(SampromptError, ValueError):
    """An image has the wrong shape or dtype, or its file cannot be read."""


class CheckpointError(SampromptError):
    """A checkpoint is corrupt, unsafe, or made for another architecture or model."""


class ConfigError(SampromptError, ValueError):
    """A configuration value is out of range or does not fit the chosen method."""


class DownloadError(SampromptError):
    """A weights download failed or did not match its sha256."""


class MissingDependencyError(SampromptError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


def require(module: str, extra: str):
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``extra``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module!r} is needed for this feature; install it with: pip install 'samprompt[{extra}]'"
        ) from exc
