"""The few lines that differ between Keras' backends: start-up, devices, gradients, compiling.

The engine is written once on ``keras.ops``; ``KERAS_BACKEND`` chooses what computes it:
``tensorflow`` (the default: oneDNN's bfloat16 on CPUs) or ``jax`` (CPU or CUDA; its L-BFGS runs
on the device, ``stylecore.lbfgs``). Keras has no op for taking a gradient or compiling a
function, so those are here, one small function per backend.

Nothing here imports TensorFlow, JAX or Keras at module level: django-q2 forks its workers, and CUDA
does not survive a fork, so each worker initialises its backend on first use (``keras_ops``).
"""

import functools
import os
import threading
from dataclasses import dataclass, field

BACKENDS = ("tensorflow", "jax")
DEFAULT_BACKEND = "tensorflow"
_lock = threading.Lock()
_started = None


def default_backend():
    """jax where JAX's CUDA plugin is installed (``make setup`` on a GPU host installs it), so that a
    worker there computes on the GPU with no setting; tensorflow elsewhere. Looked up without
    importing anything."""
    import importlib.util

    for plugin in ("jax_cuda13_plugin", "jax_cuda12_plugin"):
        if importlib.util.find_spec(plugin) is not None:
            return "jax"
    return DEFAULT_BACKEND


def name():
    """The backend the engine computes with: ``KERAS_BACKEND``, else ``default_backend()``."""
    chosen = os.environ.get("KERAS_BACKEND") or default_backend()
    if chosen not in BACKENDS:
        from .errors import SettingsError

        raise SettingsError(f"KERAS_BACKEND must be {' or '.join(BACKENDS)}, not {chosen!r}.")
    return chosen


def named_in(label):
    """The backend an ``Engine.device`` label names ("CPU (jax)": jax), else ``name()``."""
    inside = str(label).rpartition("(")[2].rstrip(")")
    return inside if inside in BACKENDS else name()


def _configure_memory(chosen):
    """Two workers on one GPU must not both take all of its memory: TensorFlow grows its use as
    needed; JAX allocates on demand instead of preallocating 75 % of the card."""
    if chosen == "jax":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # already initialised by an earlier engine in this process


def keras_ops():
    """``keras.ops`` on the chosen backend, started once per process."""
    global _started
    with _lock:
        if _started is None:
            chosen = name()
            os.environ["KERAS_BACKEND"] = chosen
            _configure_memory(chosen)
            import keras

            if keras.backend.backend() != chosen:
                from .errors import SettingsError

                raise SettingsError(f"Keras was already started on {keras.backend.backend()} in this process; "
                                    f"set KERAS_BACKEND={chosen} before anything imports Keras.")
            _started = chosen
    import keras

    return keras.ops


@dataclass(frozen=True)
class Device:
    """Where the engine computes: ``kind`` is "CPU" or "GPU"; ``compute_capability`` (major, minor)
    on NVIDIA GPUs."""

    kind: str
    label: str
    compute_capability: tuple = field(default=(0, 0))


def _jax_gpus():
    import jax

    return [d for d in jax.devices() if d.platform == "gpu"]


def device():
    """The first accelerator the backend sees, else the CPU."""
    keras_ops()
    if name() == "jax":
        gpus = _jax_gpus()
        if not gpus:
            return Device("CPU", "CPU")
        capability = getattr(gpus[0], "compute_capability", "0.0")
        return Device("GPU", f"GPU:0 {gpus[0].device_kind}".strip(),
                      tuple(int(part) for part in str(capability).split(".")[:2]))
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return Device("CPU", "CPU")
    details = tf.config.experimental.get_device_details(gpus[0])
    return Device("GPU", f"GPU:0 {details.get('device_name', 'GPU')}".strip(),
                  tuple(details.get("compute_capability") or (0, 0)))


def compile(function, signature=None, weights=None):
    """``function`` compiled for the backend: ``tf.function`` (``signature``: [(shape, dtype)], None in
    a shape for any size, so one graph serves every image size) or ``jax.jit`` (one program per shape).

    ``weights`` (a network's arrays, any nesting of lists and tuples): ``function`` takes them as its
    last argument and the result is called without them. JAX passes them to each program as an
    argument. Closed over, they would be constants of every program, one copy per image size and per
    function in the device's memory, and they made XLA's compile 2.4× as long at 64 rows
    (docs/PERFORMANCE.md, "The network's weights: arguments, not constants")."""
    if name() == "jax":
        import jax

        compiled = jax.jit(function)
        return compiled if weights is None else _bound(compiled, weights)
    import tensorflow as tf

    if weights is not None:
        function = _bound(function, weights)  # captured by the graph, as a closure's tensors are
    specs = None if signature is None else [_spec(tf, item) for item in signature]
    # No AutoGraph: the engine has no Python control flow over tensors to convert, and AutoGraph's
    # converted copies of keras.ops-based helpers mixed up two functions of network.py.
    return tf.function(function, input_signature=specs, autograph=False)


def _bound(function, weights):
    """``function`` called with ``weights`` as its last argument; a jitted one's ``lower`` shows its program."""
    def bound(*args):
        return function(*args, weights)

    if hasattr(function, "lower"):
        bound.lower = lambda *args: function.lower(*args, weights)
    return bound


def _spec(tf, item):
    if isinstance(item, list):
        return [_spec(tf, inner) for inner in item]
    shape, dtype = item
    return tf.TensorSpec(shape, dtype)


def value_and_gradient(function):
    """``function(x, *rest) → (value, aux)`` turned into ``(x, *rest) → (value, aux, d value / d x)``."""
    if name() == "jax":
        import jax

        gradient = jax.value_and_grad(function, has_aux=True)

        def with_gradient(x, *rest):
            (value, aux), grad = gradient(x, *rest)
            return value, aux, grad

        return with_gradient
    import tensorflow as tf

    def with_gradient(x, *rest):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value, aux = function(x, *rest)
        return value, aux, tape.gradient(value, x)

    return with_gradient


def convolution_weights(ops, kernel, dtype):
    """A 3×3 (odd, square) HWIO ``kernel`` as ``same_convolution`` takes it: (kernel, its input
    gradient's kernel) in ``dtype``. On JAX the second is the kernel flipped with its channels swapped,
    made once here (below); elsewhere None."""
    kernel = ops.convert_to_tensor(kernel, dtype)
    if name() != "jax":
        return kernel, None
    import jax.numpy as jnp

    return kernel, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)


def same_convolution(ops, x, kernel, flipped):
    """``ops.conv(x, kernel, 1, padding="same")``, differentiable in x, for (kernel, flipped) from
    ``convolution_weights``.

    On JAX its input gradient is a "same" convolution with ``flipped``: left to JAX's own gradient,
    XLA's CPU compiler keeps that kernel as a transposed layout inside a loop body (the device-side
    L-BFGS, ``stylecore.lbfgs``), where those convolutions ran 2.3-2.6× slower per evaluation than the
    same gradient outside a loop (jax-ml/jax#12868; docs/PERFORMANCE.md, "JAX's convolutions inside
    the L-BFGS loop"). No gradient flows to the kernels: the engine optimises pictures, not weights."""
    if name() != "jax":
        return ops.conv(x, kernel, 1, padding="same")
    return _jax_same_convolution()(x, kernel, flipped)


@functools.cache
def _jax_same_convolution():
    import jax
    from keras import ops

    @jax.custom_vjp
    def convolve(x, kernel, flipped):
        return ops.conv(x, kernel, 1, padding="same")

    def forward(x, kernel, flipped):
        return convolve(x, kernel, flipped), flipped

    def backward(flipped, gradient):
        return ops.conv(gradient, flipped, 1, padding="same"), None, None

    convolve.defvjp(forward, backward)
    return convolve


def peak_memory():
    """The most device memory this process has held, in bytes, where the backend says (a GPU); None
    on a CPU."""
    keras_ops()
    if name() == "jax":
        gpus = _jax_gpus()
        return (gpus[0].memory_stats() or {}).get("peak_bytes_in_use") if gpus else None
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0").get("peak")


def to_numpy(value):
    """A backend tensor as a numpy array (copied off the device)."""
    import numpy as np

    return np.asarray(keras_ops().convert_to_numpy(value))


def constant(value, dtype="float32"):
    """A numpy array as a backend tensor on the engine's device."""
    return keras_ops().convert_to_tensor(value, dtype=dtype)


__all__ = ["BACKENDS", "Device", "name", "keras_ops", "device", "compile", "value_and_gradient", "peak_memory",
           "to_numpy", "constant"]
