"""One engine, two backends: TensorFlow (scipy's L-BFGS on the host) and JAX (optax's on the device).

Keras' backend is chosen once per process, so each backend runs in a child process of its own. The
rest of tests/stylecore runs under either (``make test`` runs it under both).
"""

import argparse
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

CHILD = """
import argparse
import json
import stylecore
from stylecore.samples import landscape, swirls

engine = stylecore.Engine()
content, style = landscape(64, 85), swirls(64, 85)
reports = []
settings = stylecore.RunSettings(rows=64, start_rows=64, iterations=5, init="content", precision="float32")
result = engine.stylize(content, style, settings, reports.append)
print(json.dumps({"backend": engine.backend, "device": engine.device, "solver": result.solver,
                  "losses": [r.loss for r in reports], "evaluations": [r.evaluations for r in reports],
                  "report_backends": sorted({r.backend for r in reports})}))
"""


def run_on(backend):
    environment = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu")
    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=environment,
                           timeout=900)
    assert child.returncode == 0, child.stderr[-2000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs():
    return {backend: run_on(backend) for backend in ("tensorflow", "jax")}


def test_each_backend_says_what_computed(runs):
    assert runs["tensorflow"]["device"] == "CPU (tensorflow)"
    assert runs["tensorflow"]["solver"] == "scipy L-BFGS-B on the host"
    assert runs["jax"]["device"] == "CPU (jax)"
    assert runs["jax"]["solver"] == "optax L-BFGS on the device"
    assert runs["jax"]["report_backends"] == ["jax"]


def test_both_backends_compute_the_same_loss_for_the_same_image(runs):
    assert runs["jax"]["losses"][0] == pytest.approx(runs["tensorflow"]["losses"][0], rel=1e-4)


def test_the_device_lbfgs_lowers_the_loss_like_scipys(runs):
    scipy, device = runs["tensorflow"]["losses"], runs["jax"]["losses"]
    assert len(device) == 6 and device[-1] < 0.85 * device[0]
    assert device[-1] == pytest.approx(scipy[-1], rel=0.05)
    # An iteration is still about 20 evaluations (a line search may end a few past the mark).
    assert runs["jax"]["evaluations"][-1] == pytest.approx(101, abs=10)


def test_an_unknown_backend_is_refused_clearly():
    environment = dict(os.environ, KERAS_BACKEND="torch")
    child = subprocess.run([sys.executable, "-c", "import stylecore; stylecore.Engine().device"],
                           capture_output=True, text=True, env=environment, timeout=300)
    assert child.returncode != 0 and "KERAS_BACKEND must be tensorflow or jax, not 'torch'" in child.stderr


def test_the_gpu_check_measures_and_writes_its_figures_where_it_is_told_to_use_the_cpu(tmp_path):
    """The same script that runs on a GPU host, here on the CPU at tiny sizes (docs/DEPLOY.md)."""
    report = tmp_path / "gpucheck.json"
    environment = dict(os.environ, KERAS_BACKEND="tensorflow")
    child = subprocess.run(
        [sys.executable, "-m", "stylecore.gpucheck", "--cpu", "--rows", "32", "--evaluations", "20", "--run-rows",
         "32", "--run-iterations", "1", "--agreement-iterations", "1", "--workers", "1,2", "--worker-runs", "1",
         "--json", str(report)],
        capture_output=True, text=True, env=environment, timeout=900)
    assert child.returncode == 0, child.stdout[-2000:] + child.stderr[-2000:]
    assert "gpu-check passed." in child.stdout and "one evaluation at 32x32, float32" in child.stdout
    figures = json.loads(report.read_text())
    assert figures["backend"] == "tensorflow" and figures["device"] == "CPU (tensorflow)"
    assert figures["seconds_per_evaluation"]["float32"] > 0 and figures["lbfgs"]["evaluations"] >= 20
    assert 0 < figures["lbfgs"]["network_share"] and figures["default_run"]["iterations"] == 1
    assert figures["agreement"]["difference"] == 0.0 and figures["failures"] == []
    # Worker processes timed together: 1, then 2 at once, each its own process (no GPU memory on a CPU).
    workers = figures["workers"]
    assert [row["workers"] for row in workers["measured"]] == [1, 2] and workers["suggested"] in (1, 2)
    assert [row["runs"] for row in workers["measured"]] == [1, 2]
    assert all(row["runs_per_second"] > 0 and row["peak_bytes"] is None for row in workers["measured"])
    assert "2 workers on one CPU (tensorflow): 2 default runs in" in child.stdout


def test_the_gpu_bundle_holds_what_an_offline_gpu_host_lacks(tmp_path, monkeypatch):
    from stylecore import gpubundle

    downloads = []
    monkeypatch.setattr(gpubundle, "download_wheels", lambda directory, version: downloads.append(version))
    assert gpubundle.main([str(tmp_path / "gpu")]) == 0
    assert downloads == ["3.12"]
    names = sorted(path.name for path in (tmp_path / "gpu").iterdir())
    assert names == ["run.sh", "stylecore-weights.npz"]
    script = (tmp_path / "gpu" / "run.sh").read_text()
    assert "KERAS_BACKEND=${KERAS_BACKEND:-jax}" in script and "STYLECORE_WEIGHTS=" in script
    assert "--target /tmp/stylecore-site" in script and "stylecore.gpucheck --json" in script


CONVOLUTION_CHILD = """
import json, re
import numpy as np
import jax, jax.numpy as jnp
from stylecore import backend

ops = backend.keras_ops()
rng = np.random.default_rng(0)
found = {}
for dtype in ("float32", "bfloat16"):
    weights = [backend.convolution_weights(ops, rng.standard_normal((3, 3, c_in, c_out)).astype(np.float32) / 10,
                                           dtype) for c_in, c_out in ((3, 8), (8, 8), (8, 4))]
    def network(convolve):
        def loss(x, weights):
            for kernel, flipped in weights:
                x = ops.relu(convolve(x, kernel, flipped))
            return jnp.sum(ops.cast(x, "float32") ** 2)
        return loss

    ours = network(lambda x, kernel, flipped: backend.same_convolution(ops, x, kernel, flipped))
    autodiff = network(lambda x, kernel, _flipped: ops.conv(x, kernel, 1, padding="same"))
    x = jnp.asarray(rng.standard_normal((1, 12, 17, 3)), dtype)
    mine, theirs = (np.asarray(jax.grad(f)(x, weights), np.float32) for f in (ours, autodiff))

    # The weights are the program's arguments, as the engine passes them (backend.compile).
    @jax.jit
    def in_a_loop(x, weights):
        return jax.lax.fori_loop(0, 3, lambda i, x: x - 1e-3 * jax.grad(ours)(x, weights), x)

    hlo = in_a_loop.lower(x, weights).compile().as_text()
    found[dtype] = {"same_loss": float(ours(x, weights)) == float(autodiff(x, weights)),
                    "gradient_difference": float(np.abs(mine - theirs).max() / np.abs(theirs).max()),
                    "kernel_layouts": sorted(set(re.findall(r"dim_labels=b01f_(\\w+)->b01f", hlo)))}
print(json.dumps(found))
"""


def test_on_jax_a_convolutions_gradient_is_autodiffs_and_keeps_its_kernel_layout_inside_a_loop():
    """backend.same_convolution's input gradient (the flipped, transposed kernel made once) is the one
    JAX's autodiff computes; inside a compiled loop (the device-side L-BFGS) XLA's CPU compiler then
    lays every kernel out as a forward convolution's (01io), not as a transposed one (01oi), which ran
    2.3-2.6x slower (docs/PERFORMANCE.md, "JAX's convolutions inside the L-BFGS loop")."""
    environment = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    child = subprocess.run([sys.executable, "-c", CONVOLUTION_CHILD], capture_output=True, text=True,
                           env=environment, timeout=600)
    assert child.returncode == 0, child.stderr[-2000:]
    found = json.loads(child.stdout.strip().splitlines()[-1])
    for dtype, seen in found.items():
        assert seen["same_loss"], dtype
        assert seen["gradient_difference"] <= (1e-6 if dtype == "float32" else 1e-2), (dtype, seen)
        assert seen["kernel_layouts"] == ["01io"], (dtype, seen)


PROGRAMS_CHILD = """
import json
import numpy as np
import jax.numpy as jnp
import stylecore
from stylecore import backend
from stylecore.engine import _model_key, lbfgs_scale
from stylecore.images import caffe_bounds, preprocess
from stylecore.samples import landscape, swirls

engine = stylecore.Engine()
functions = engine.loss_functions("float32")
content, style = landscape(32, 43), swirls(32, 43)
image = backend.constant(preprocess(content)[None])
target, _ = functions.targets(image)
_, grams = functions.targets(backend.constant(preprocess(style)[None]))
weights = backend.constant(np.array([1.0, 1.0, 1e-3], np.float32))
layer_weights = backend.constant(np.ones(len(functions.style_names), np.float32))
scale = backend.constant(lbfgs_scale(content.shape))
total, _, gradient = functions.loss_and_gradient(image, target, grams, weights, layer_weights, scale)
solver = engine._device_lbfgs(_model_key("float32"), 5)
x, state = solver.start(preprocess(content), float(total), backend.to_numpy(gradient)[0], scale)
low, high = (backend.constant(bound) for bound in caffe_bounds(content.shape))
encode, stylise = engine._adain_functions("float32")
programs = {
    "targets": functions.targets.lower(image),
    "loss_and_gradient": functions.loss_and_gradient.lower(image, target, grams, weights, layer_weights, scale),
    "lbfgs_iteration": solver._iterate.lower(x, state, jnp.int32(20), (target, grams, weights, layer_weights),
                                             scale, low, high, solver._network),
    "adain_encoder": encode.lower(image),
}
print(json.dumps({name: len(program.as_text()) for name, program in programs.items()}))
"""


def test_on_jax_the_networks_weights_are_arguments_of_each_program_not_constants_in_it():
    """Each compiled program takes VGG19's weights as an argument (backend.compile): baked in, every
    program (one per function and image size) held its own copy, 120-245 MB of program text, and XLA took
    2.4x as long to compile (docs/PERFORMANCE.md, "The network's weights: arguments, not constants")."""
    environment = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    child = subprocess.run([sys.executable, "-c", PROGRAMS_CHILD], capture_output=True, text=True,
                           env=environment, timeout=600)
    assert child.returncode == 0, child.stderr[-2000:]
    sizes = json.loads(child.stdout.strip().splitlines()[-1])
    assert set(sizes) == {"targets", "loss_and_gradient", "lbfgs_iteration", "adain_encoder"}
    # The weights up to block5_conv2 are 80 MB in float32; the programs' own text is well under 1 MB.
    assert all(size < 1_000_000 for size in sizes.values()), sizes


def test_a_worker_process_that_fails_fails_the_workers_check_with_its_message():
    from stylecore import gpucheck

    args = argparse.Namespace(workers=[2], worker_runs=1, workers_seconds=60, run_rows=1, run_iterations=1)
    report, failures = {"device": "CPU"}, []
    gpucheck.workers(args, report, failures)
    assert len(failures) == 1 and failures[0].startswith("a worker process of the 2-worker check failed:")
    assert "rows" in failures[0].lower() and "workers" not in report


@pytest.mark.parametrize("text, counts", [("1,2,3", [1, 2, 3]), ("0", []), ("", []), (" 2, 4 ", [2, 4])])
def test_worker_counts_are_read_from_a_list(text, counts):
    from stylecore import gpucheck

    assert gpucheck._counts(text) == counts


@pytest.mark.parametrize("text", ["two", "1,-2"])
def test_bad_worker_counts_are_refused_clearly(text):
    from stylecore import gpucheck

    with pytest.raises(argparse.ArgumentTypeError, match="worker counts"):
        gpucheck._counts(text)
