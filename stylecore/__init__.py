"""stylecore: neural style transfer (Gatys et al.) with Keras VGG19, free of Django.

    import stylecore
    engine = stylecore.Engine()
    settings = stylecore.RunSettings(rows=400, iterations=50)
    result = engine.stylize("content.jpg", "style.jpg", settings,
                            callback=lambda report: print(report.iteration, report.loss))

Importing this package does not import TensorFlow; the engine does so on first use.
See stylecore/README.md for the settings and what the loss weights mean.
"""

from .engine import Engine, IterationReport, TransferResult, engine_inputs
from .errors import DivergedError, ImageError, SettingsError, StyleCoreError, WeightsError
from .images import load_image, prepare_images
from .schema import DEFAULTS, SETTINGS, RunSettings

__all__ = [
    "Engine", "IterationReport", "TransferResult", "engine_inputs", "load_image", "prepare_images",
    "StyleCoreError", "ImageError", "WeightsError", "SettingsError", "DivergedError", "DEFAULTS",
    "SETTINGS", "RunSettings",
]
