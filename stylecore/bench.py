"""Benchmark: the seed notebook's formulation against the engine, side by side in one run.

    python -m stylecore.bench [--rows 400] [CONTENT STYLE]

(a) Seconds per loss+gradient evaluation. The notebook pushes a batch of three
    images [content, style, combination] through the full VGG19
    (include_top=False) on every evaluation and recomputes all features and
    Gram matrices with its unnormalised losses; the engine computes the content
    features and style Grams once and runs only the combination image through
    VGG19 truncated after block5_conv2. Measurements alternate between the two
    so that machine noise affects both alike.
(b) Loss reached after the same number of evaluations by the notebook's
    strategy (``fmin_l_bfgs_b(maxfun=20)`` restarted every iteration, losing the
    L-BFGS memory) and the engine's continuous L-BFGS, both on the engine's loss
    function and box bounds, so only the optimiser strategy differs.

Without image paths it uses the procedural samples in ``stylecore.samples``.
"""

import argparse
import statistics
import sys
import time

import numpy as np

from . import DEFAULTS, Engine, prepare_images
from .engine import EVALUATIONS_PER_ITERATION, _tensorflow, lbfgs_scale
from .images import caffe_bounds, preprocess
from .samples import landscape, swirls
from .weights import build_vgg19

NOTEBOOK_WEIGHTS = (1.0, 1e4, 10.0)  # content, style, tv as in the seed notebook


def notebook_function(tf, vgg, content, style):
    """The seed's evaluation as a tf.function: 3-image batch, full VGG19, losses recomputed."""
    import keras

    rows, cols = content.shape[:2]
    names = ["block5_conv2", "block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1",
             "block5_conv1"]
    model = keras.Model(vgg.inputs, [vgg.get_layer(n).output for n in names] + [vgg.output])
    base = tf.constant(preprocess(content)[None])
    style_reference = tf.constant(preprocess(style)[None])
    content_weight, style_weight, tv_weight = NOTEBOOK_WEIGHTS

    def gram(x):
        features = tf.reshape(tf.transpose(x, (2, 0, 1)), [tf.shape(x)[2], -1])
        return tf.matmul(features, features, transpose_b=True)

    @tf.function(input_signature=[tf.TensorSpec([1, rows, cols, 3], tf.float32)])
    def evaluate(combination):
        with tf.GradientTape() as tape:
            tape.watch(combination)
            outputs = model(tf.concat([base, style_reference, combination], axis=0), training=False)
            features = outputs[0]
            loss = content_weight * tf.reduce_sum(tf.square(features[2] - features[0]))
            for layer in outputs[1:6]:
                s, c = gram(layer[1]), gram(layer[2])
                loss += (style_weight / 5) * tf.reduce_sum(tf.square(s - c)) / (
                    4.0 * 9 * float(rows * cols) ** 2)
            a = tf.square(combination[:, :-1, :-1, :] - combination[:, 1:, :-1, :])
            b = tf.square(combination[:, :-1, :-1, :] - combination[:, :-1, 1:, :])
            loss += tv_weight * tf.reduce_sum(tf.pow(a + b, 1.25))
        # The full network's output is returned so the whole VGG19 is computed, as in the seed.
        return loss, tape.gradient(loss, combination), tf.reduce_mean(outputs[-1])

    return evaluate


class EngineObjective:
    """The engine's loss on one image pair, counting evaluations and the best loss seen."""

    def __init__(self, engine, content, style, weights):
        tf = _tensorflow()
        engine._ensure_model()
        self.engine = engine
        self.shape = content.shape
        self.content_target, _ = engine._targets(tf.constant(preprocess(content)[None]))
        _, self.style_grams = engine._targets(tf.constant(preprocess(style)[None]))
        self.weights = np.asarray(weights, np.float32)
        self.scale = lbfgs_scale(self.shape)  # the same conditioning the engine's L-BFGS gets
        self.reset()

    def reset(self, budget=None):
        self.count, self.best, self.budget, self.trace = 0, np.inf, budget, []

    def __call__(self, flat):
        if self.budget is not None and self.count >= self.budget:
            raise StopIteration
        x = np.asarray(flat, np.float32).reshape((1,) + self.shape)
        total, _, gradient = self.engine._loss_and_gradient(
            x, self.content_target, self.style_grams, self.weights)
        self.count += 1
        self.best = min(self.best, float(total))
        self.trace.append(self.best)
        return self.scale * float(total), self.scale * gradient.numpy().ravel().astype(np.float64)


def time_evaluations(notebook, objective, x, rounds, per_round):
    """Alternate notebook and engine evaluations; return per-evaluation seconds for each."""
    notebook_times, engine_times = [], []
    x_tf = x[None].astype(np.float32)
    notebook(x_tf)  # trace and warm up both
    objective(x.ravel())

    def run_notebook():
        for _ in range(per_round):
            start = time.perf_counter()
            loss, gradient, _ = notebook(x_tf)
            gradient.numpy()
            notebook_times.append(time.perf_counter() - start)

    def run_engine():
        for _ in range(per_round):
            start = time.perf_counter()
            objective(x.ravel())
            engine_times.append(time.perf_counter() - start)

    for i in range(rounds):
        order = (run_notebook, run_engine) if i % 2 == 0 else (run_engine, run_notebook)
        for run in order:
            run()
    return notebook_times, engine_times


def restart_every_20(objective, x0, bounds, evaluations):
    """The seed's strategy: fmin_l_bfgs_b(maxfun=20) restarted from its result each iteration."""
    from scipy.optimize import fmin_l_bfgs_b

    objective.reset(budget=evaluations)
    x = x0.ravel().astype(np.float64)
    started = time.perf_counter()
    try:
        while objective.count < evaluations:
            x, _, _ = fmin_l_bfgs_b(objective, x, bounds=bounds, maxfun=EVALUATIONS_PER_ITERATION)
    except StopIteration:
        pass
    return list(objective.trace), time.perf_counter() - started


def continuous(engine, content, style, evaluations):
    """The engine's own L-BFGS (stylize), reading the loss every iteration."""
    losses = {}

    def record(report):
        losses[report.evaluations] = report.loss

    iterations = max(1, (evaluations - 1) // EVALUATIONS_PER_ITERATION)
    started = time.perf_counter()
    engine.stylize(content, style, rows=content.shape[0], iterations=iterations, callback=record)
    return losses, time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m stylecore.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("content", nargs="?", help="content image (default: procedural landscape)")
    parser.add_argument("style", nargs="?", help="style image (default: procedural swirls)")
    parser.add_argument("--rows", type=int, default=DEFAULTS.rows)
    parser.add_argument("--rounds", type=int, default=4, help="alternating timing rounds (default 4)")
    parser.add_argument("--per-round", type=int, default=3, help="evaluations per side per round")
    parser.add_argument("--evaluations", type=int, default=200,
                        help="evaluation budget of the optimiser comparison (default 200)")
    parser.add_argument("--part", choices=("both", "timing", "optimizer"), default="both",
                        help="run only (a) the timing or (b) the optimiser comparison")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up when redirected to a file
    if (args.content is None) != (args.style is None):
        parser.error("give both CONTENT and STYLE, or neither")
    if args.content:
        content, style = prepare_images(args.content, args.style, rows=args.rows)
    else:
        cols = round(args.rows * 4 / 3)
        content, style = landscape(args.rows, cols), swirls(args.rows, cols)

    tf = _tensorflow()
    engine = Engine()
    objective = EngineObjective(engine, content, style,
                                (DEFAULTS.content_weight, DEFAULTS.style_weight, DEFAULTS.tv_weight))
    rows, cols = content.shape[:2]
    print(f"stylecore benchmark: {rows}x{cols} pixels on {engine.device}, "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'} intra-op threads")

    if args.part != "optimizer":
        time_both(notebook_function(tf, build_vgg19(), content, style), objective, content, args)
    if args.part != "timing":
        compare_optimizers(engine, objective, content, style, args.evaluations)
    return 0


def time_both(notebook, objective, content, args):
    x = preprocess(content) + np.random.default_rng(0).normal(0, 8, content.shape).astype(np.float32)
    notebook_times, engine_times = time_evaluations(notebook, objective, x, args.rounds, args.per_round)
    nb, en = statistics.median(notebook_times), statistics.median(engine_times)
    print("\n(a) seconds per loss+gradient evaluation (median of "
          f"{len(engine_times)}, alternating rounds)")
    print(f"    notebook (3-image batch, full VGG19, targets recomputed): {nb:.3f} s")
    print(f"    engine   (targets once, VGG19 up to block5_conv2):        {en:.3f} s")
    print(f"    engine is {nb / en:.2f}x faster")


def compare_optimizers(engine, objective, content, style, budget):
    low, high = caffe_bounds(content.shape)
    bounds = list(zip(low.ravel().astype(float), high.ravel().astype(float)))
    engine_losses, engine_seconds = continuous(engine, content, style, budget + 1)
    restart_trace, restart_seconds = restart_every_20(objective, preprocess(content), bounds, budget + 1)
    print("\n(b) loss after N evaluations, from the content image, engine loss and default weights")
    print("    N     restart every 20   continuous    ratio")
    for n in sorted(engine_losses):
        if n > 1 and n <= len(restart_trace):
            r, c = restart_trace[n - 1], engine_losses[n]
            print(f"    {n:<5d} {r:<18.5g} {c:<13.5g} {r / c:.2f}")
    final = max(n for n in engine_losses if n <= len(restart_trace))
    print(f"    after {final} evaluations the continuous L-BFGS loss is "
          f"{restart_trace[final - 1] / engine_losses[final]:.2f}x lower "
          f"({restart_seconds:.0f} s vs {engine_seconds:.0f} s wall)")


if __name__ == "__main__":
    raise SystemExit(main())
