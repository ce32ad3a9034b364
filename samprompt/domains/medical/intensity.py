"""Intensity for volumes: CT windows in Hounsfield units, MR percentiles over the whole volume, and
``auto``, which picks one from the modality and says what it chose.

Windows are :class:`~samprompt.normalize.Window` normalisers (MONAI-style array
transforms: any array in, uint8 out), so one window maps every slice alike.
MR has no absolute scale: :func:`volume_percentile` computes the [0.5, 99.5]
percentiles once over the whole volume (not per slice, which would make the
same tissue look different from slice to slice) and windows with them.
"""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from ...normalize import Window

#: name -> (width, level) in HU
CT_WINDOWS = {
    "soft": (400.0, 40.0),
    "lung": (1500.0, -600.0),
    "bone": (1800.0, 400.0),
    "brain": (80.0, 40.0),
    "liver": (150.0, 30.0),
}
WINDOW_HELP = ("auto (CT: soft, MR: volume percentiles), mr (volume percentiles), a CT preset "
               + ", ".join(f"{k} (W{w:g}/L{lv:g})" for k, (w, lv) in CT_WINDOWS.items()) + ", or W,L in HU")


def volume_percentile(data: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> Window:
    """A window from the whole volume's percentiles (MR); a constant volume gets a unit window."""
    sample = data.ravel()[:: max(1, data.size // 2_000_000)]  # a few million voxels fix the percentiles
    lo, hi = (float(v) for v in np.percentile(sample, [lower, upper]))
    return Window(lo, hi if hi > lo else lo + 1.0)


def looks_like_ct(data: np.ndarray) -> bool:
    """Intensities in Hounsfield units: air near -1000 present, nothing below -1100 or above ~5000, whole numbers."""
    sample = data.ravel()[:: max(1, data.size // 1_000_000)]
    lo, p1 = float(sample.min()), float(np.percentile(sample, 1))
    integral = np.allclose(sample[:1000], np.round(sample[:1000]))
    return lo >= -1100 and p1 <= -500 and float(sample.max()) <= 5000 and integral


def parse_window(text: str) -> str | tuple[float, float]:
    """``auto``, ``mr``, a preset name or ``W,L``; a :class:`ConfigError` names the choices otherwise."""
    t = str(text).strip().lower()
    if t in ("auto", "mr") or t in CT_WINDOWS:
        return t
    parts = t.split(",")
    if len(parts) == 2:
        try:
            width, level = float(parts[0]), float(parts[1])
        except ValueError:
            pass
        else:
            if width <= 0:
                raise ConfigError(f"window width must be > 0, got {text!r}")
            return (width, level)
    raise ConfigError(f"unknown window {text!r}; use {WINDOW_HELP}")


def choose_window(data: np.ndarray, window: str | tuple[float, float] = "auto",
                  modality: str | None = None) -> tuple[Window, str]:
    """The window for a volume and a line saying what was chosen and why."""
    w = parse_window(window) if isinstance(window, str) else window
    if isinstance(w, tuple):
        return Window.from_level(*w), f"window W{w[0]:g}/L{w[1]:g}"
    if w in CT_WINDOWS:
        width, level = CT_WINDOWS[w]
        return Window.from_level(width, level), f"CT window {w} (W{width:g}/L{level:g})"
    if w == "mr":
        win = volume_percentile(data)
        return win, f"volume percentiles 0.5-99.5 ({win.lo:g} to {win.hi:g})"
    if modality:
        is_ct, why = modality.upper() == "CT", f"DICOM Modality {modality}"
    else:
        is_ct = looks_like_ct(data)
        why = "intensities look like Hounsfield units" if is_ct else "intensities are not Hounsfield units"
    if is_ct:
        width, level = CT_WINDOWS["soft"]
        return Window.from_level(width, level), f"auto: CT ({why}) -> soft-tissue window W{width:g}/L{level:g}"
    win = volume_percentile(data)
    return win, f"auto: MR-like ({why}) -> volume percentiles 0.5-99.5 ({win.lo:g} to {win.hi:g})"


__all__ = ["CT_WINDOWS", "choose_window", "looks_like_ct", "parse_window", "volume_percentile"]
