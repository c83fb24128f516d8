"""Exceptions raised by the engine; all derive from StyleCoreError."""


class StyleCoreError(Exception):
    """Base class of every error stylecore raises on purpose."""


class ImageError(StyleCoreError):
    """An input could not be read as an image (not an image, truncated, unsupported)."""


class WeightsError(StyleCoreError):
    """The VGG19 weights are missing or unreadable; the message says how to fix it."""


class SettingsError(StyleCoreError, ValueError):
    """A setting (weight, size, iteration count, option name) is out of range."""


class DivergedError(StyleCoreError):
    """The loss became NaN or infinite.

    ``last_image`` is the last image with a finite loss (uint8 HxWx3 RGB) and
    ``iteration`` the iteration number it belongs to, so a caller can keep it.
    """

    def __init__(self, message, *, last_image, iteration):
        super().__init__(message)
        self.last_image = last_image
        self.iteration = iteration
