"""Keeping the photo's colours: Gatys, Bethge, Hertzmann & Shechtman, *Preserving Color in Neural
Artistic Style Transfer* (2016). numpy only.

* **luminance**: the transfer sees only luminance (Y of YCbCr, ITU-R BT.601, as JPEG uses it): the
  content and the style become grey pictures, the style's luminance matched to the content's mean
  and standard deviation; the result's luminance is then joined to the content's chroma (Cb, Cr).
* **histogram**: each style image is recoloured before the transfer so that its colours have the
  content's mean and covariance (x' = A (x − μ_s) + μ_c with A = Σ_c^½ Σ_s^−½, the symmetric
  square roots: the paper's "3D colour matching" of Image Analogies).
"""

import numpy as np

from .images import CAFFE_MEAN_BGR

# RGB → YCbCr (BT.601, full range) without the 128 offset of the chroma channels.
_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                      [-0.168736, -0.331264, 0.5],
                      [0.5, -0.418688, -0.081312]], dtype=np.float64)
_FROM_YCBCR = np.linalg.inv(_TO_YCBCR)
_EPSILON = 1e-5


def to_ycbcr(rgb):
    """(…, 3) RGB in 0–255 → float64 Y (0–255), Cb and Cr (centred on 0)."""
    return np.asarray(rgb, dtype=np.float64) @ _TO_YCBCR.T


def from_ycbcr(ycbcr):
    """Inverse of ``to_ycbcr``: float64 RGB, not clipped."""
    return np.asarray(ycbcr, dtype=np.float64) @ _FROM_YCBCR.T


def _as_uint8(rgb):
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _grey(luma):
    return _as_uint8(np.repeat(luma[..., None], 3, axis=-1))


def luminance_image(image):
    """A uint8 RGB picture as a grey picture of its luminance (three equal channels)."""
    return _grey(to_ycbcr(image)[..., 0])


def matched_luminance(style, content):
    """The style's luminance as a grey picture, shifted and scaled to the content's mean and std."""
    style_y, content_y = to_ycbcr(style)[..., 0], to_ycbcr(content)[..., 0]
    scale = content_y.std() / (style_y.std() + _EPSILON)
    return _grey((style_y - style_y.mean()) * scale + content_y.mean())


def _symmetric_power(matrix, power):
    values, vectors = np.linalg.eigh(matrix)
    values = np.maximum(values, _EPSILON)
    return (vectors * values ** power) @ vectors.T


def matched_colours(style, content):
    """The style picture recoloured to the content's colour mean and covariance (uint8 RGB)."""
    style_pixels = np.asarray(style, dtype=np.float64).reshape(-1, 3)
    content_pixels = np.asarray(content, dtype=np.float64).reshape(-1, 3)
    style_mean, content_mean = style_pixels.mean(axis=0), content_pixels.mean(axis=0)
    transform = (_symmetric_power(np.cov(content_pixels, rowvar=False), 0.5)
                 @ _symmetric_power(np.cov(style_pixels, rowvar=False), -0.5))
    recoloured = (style_pixels - style_mean) @ transform.T + content_mean
    return _as_uint8(recoloured).reshape(np.shape(style))


def with_content_chroma(pixels, content):
    """Engine pixels (caffe BGR floats) with their luminance kept and the content's chroma put back.

    ``content`` is the uint8 RGB content picture at the pixels' size. The result is clipped to
    the valid range (a bright luminance with a strong chroma can leave it).
    """
    rgb = (np.asarray(pixels, dtype=np.float64) + CAFFE_MEAN_BGR)[..., ::-1]
    ycbcr = to_ycbcr(content)
    ycbcr[..., 0] = to_ycbcr(rgb)[..., 0]
    coloured = np.clip(from_ycbcr(ycbcr), 0.0, 255.0)
    return (coloured[..., ::-1] - CAFFE_MEAN_BGR).astype(np.float32)


__all__ = ["to_ycbcr", "from_ycbcr", "luminance_image", "matched_luminance", "matched_colours",
           "with_content_chroma"]
