"""Pose alignment: turn each image so its part sits as in a reference shot, before scoring.

Parts on a line often come at any angle (a key notch, a keyway, a bolt). A memory
bank of a few shots then holds the notch at a few angles only, and a normal notch
at a new angle scores as a defect. :class:`PoseAligner` removes the rotation and
the shift before the features are taken:

1. the part's centre: the centroid of the foreground's largest piece (Otsu on
   the blurred grey image). There is no part when the foreground covers under 5 %
   or over 90 % of the image, is in pieces, or runs off the image (a texture);
   the image centre is then used;
2. the angle: a polar unwrapping of the grey image around that centre turns a
   rotation into a circular shift along the angle axis; the shift that best
   matches the reference's unwrapping (circular cross-correlation by FFT, 0.5°
   bins, each radius weighted alike) is the angle;
3. the image is turned by that angle about its centre and moved so the centre
   falls on the reference's (borders replicated); the map is scored there and
   turned back onto the original image with the inverse transform.

``needs_alignment`` decides for ``align="auto"``: the images (the shots and the
held-out good images; at zero shots, the test images) are aligned to the first
one, and alignment is used when at least 80 % of them show a part (a defect may
break one's silhouette) and alignment does not lower the mean normalised
correlation (of blurred grey images) of those with the first (``min_gain`` 0):
true of parts, never of textures. An earlier rule asked for a gain of 0.1 and
missed a round part whose shading turns with it (the generated disc: gains of
0.04-0.08, as parts that only shift give 0.03-0.08), whose maps alignment
improves (pixel F1-max 0.27 -> 0.35 at 4 shots; docs/defects.md). Where the pose
itself is inspected (a part placed the wrong way round), use ``align="off"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BINS = 720  # angle bins of the polar unwrapping (0.5 degrees)
RADII = 96


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def part_centre(rgb: np.ndarray) -> tuple[float, float] | None:
    """(x, y) of the foreground's centroid (see the module doc); None when there is no part."""
    g = cv2.GaussianBlur((_grey(rgb) * 255).astype(np.uint8), (0, 0), 2)
    _, fg = cv2.threshold(g, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if fg.mean() > 0.5:  # the part is the darker side
        fg = 1 - fg
    h, w = g.shape
    if not 0.05 <= fg.mean() <= 0.9:
        return None
    n, lab, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    part = (lab == k).astype(np.uint8)
    border = np.concatenate([part[0], part[-1], part[:, 0], part[:, -1]])
    if stats[k, cv2.CC_STAT_AREA] < 0.9 * fg.sum() or border.mean() > 0.05:
        return None  # many pieces, or one that runs off the image: a texture, not a part
    m = cv2.moments(part, binaryImage=True)
    return m["m10"] / m["m00"], m["m01"] / m["m00"]


def _unwrap(rgb: np.ndarray, centre: tuple[float, float], radius: float) -> np.ndarray:
    """(BINS, RADII) polar unwrapping of the grey image, each radius's ring made zero-mean and unit-norm."""
    polar = cv2.warpPolar(_grey(rgb), (RADII, BINS), centre, radius, cv2.WARP_POLAR_LINEAR + cv2.INTER_LINEAR + cv2.WARP_FILL_OUTLIERS)
    polar = polar - polar.mean(0, keepdims=True)
    return polar / np.maximum(np.linalg.norm(polar, axis=0, keepdims=True), 1e-6)


@dataclass
class PoseAligner:
    """Aligns images to a reference shot's pose (see the module doc)."""

    reference: np.ndarray  # (BINS, RADII) unwrapping of the reference
    centre: tuple[float, float]  # the reference's part centre (x, y)
    radius: float

    @classmethod
    def from_reference(cls, rgb: np.ndarray) -> "PoseAligner":
        h, w = rgb.shape[:2]
        centre = part_centre(rgb) or (w / 2, h / 2)
        radius = 0.5 * min(h, w)
        return cls(_unwrap(rgb, centre, radius), centre, radius)

    def angle(self, rgb: np.ndarray) -> tuple[float, tuple[float, float]]:
        """(degrees to turn ``rgb`` by to match the reference, counter-clockwise on screen; its part centre)."""
        centre = part_centre(rgb) or (rgb.shape[1] / 2, rgb.shape[0] / 2)
        polar = _unwrap(rgb, centre, self.radius)
        corr = np.fft.irfft(np.fft.rfft(self.reference, axis=0).conj() * np.fft.rfft(polar, axis=0), n=BINS, axis=0)
        shift = int(np.argmax(corr.sum(1)))
        return shift * 360.0 / BINS, centre

    def transform(self, rgb: np.ndarray) -> np.ndarray:
        """The 2 x 3 affine that carries ``rgb`` onto the reference's pose."""
        deg, (cx, cy) = self.angle(rgb)
        m = cv2.getRotationMatrix2D((cx, cy), deg, 1.0)
        m[:, 2] += (self.centre[0] - cx, self.centre[1] - cy)
        return m

    def align(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(``rgb`` turned onto the reference's pose, the affine used)."""
        m = self.transform(rgb)
        h, w = rgb.shape[:2]
        return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), m

    @staticmethod
    def unalign(values: np.ndarray, m: np.ndarray) -> np.ndarray:
        """A map of the aligned image carried back onto the original image."""
        h, w = values.shape[:2]
        return cv2.warpAffine(values, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two images' blurred grey values (fine texture and sub-pixel shifts left out)."""
    a, b = (cv2.GaussianBlur(_grey(x), (0, 0), 3).astype(np.float64).ravel() for x in (a, b))
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-9))


def needs_alignment(images: list[np.ndarray], min_gain: float = 0.0, min_parts: float = 0.8) -> tuple[bool, float]:
    """(whether aligning the images to the first raises their mean correlation with it by ``min_gain`` or more,
    the gain); False when under ``min_parts`` of the images show a part or the images differ in size (see the module doc)."""
    if len({im.shape[:2] for im in images}) > 1:  # a pose is compared within one frame size
        return False, 0.0
    with_part = [im for im in images if part_centre(im) is not None]
    if len(with_part) < 2 or len(with_part) < min_parts * len(images):
        return False, 0.0
    shots = with_part
    ref = PoseAligner.from_reference(shots[0])
    before = np.mean([_ncc(shots[0], s) for s in shots[1:]])
    after = np.mean([_ncc(shots[0], ref.align(s)[0]) for s in shots[1:]])
    return bool(after - before >= min_gain), float(after - before)
