"""Benchmark: the seed notebook's formulation against the engine, side by side in one run.

    python -m tests.bench [--rows 400] [--part PART] [CONTENT STYLE]

It lives outside the engine package and uses only the engine's public names (``Engine.loss_functions``,
``Engine.vgg_layers``, ``LossFunctions``, and ``stylize``'s ``lbfgs_memory`` and ``on_evaluation``
options); nothing in ``stylecore`` imports it.

(a) Seconds per loss+gradient evaluation. The notebook pushes a batch of three
    images [content, style, combination] through the full VGG19
    (include_top=False) on every evaluation and recomputes all features and
    Gram matrices with its unnormalised losses; the engine computes the content
    features and style Grams once and runs only the combination image through
    VGG19 truncated after block5_conv2. Measurements alternate between the two
    so that machine noise affects both alike.
    The engine is timed in float32 and in bfloat16 (not where the engine refuses bfloat16 as emulated: the
    reason is printed instead), and in float32 through Keras' VGG19 model
    (the engine's first formulation) to show what the plain-TensorFlow network gains, and with
    TensorFlow differentiating the Gram matrices (two products each) instead of the engine's
    one-product gradient. A 2048² float32 matrix product runs in the same rounds: the rate it
    reaches is about the most the float32 convolutions (their FLOPs counted from VGG19's layer
    shapes) can reach on this machine.
(b) Loss reached after the same number of evaluations by the notebook's
    strategy (``fmin_l_bfgs_b(maxfun=20)`` restarted every iteration, losing the
    L-BFGS memory) and the engine's continuous L-BFGS, both on the engine's loss
    function and box bounds, so only the optimiser strategy differs.
(c) Time to quality: the first engine's configuration (float32, one size, content start,
    continuous L-BFGS) runs ``--reference-iterations`` (50) iterations; its final loss is L*.
    Then bfloat16 alone, coarse to fine alone, the AdaIN start alone and the defaults (all
    together) run until their full-size loss, evaluated in float32, is at most L*: the wall-clock
    and CPU seconds each needed, with the model already loaded. The two images at L* are saved
    with ``--images DIR``.
(d) The AdaIN preview: seconds for one whole pass (both images encoded, then decoded) and for
    another alpha on the same images (encodings cached). Then (d2, also ``--part preview-ratio`` alone):
    the whole pass against one float32 evaluation at the same size, alternating, and their ratio
    (``ONEDNN_MAX_CPU_ISA=AVX2`` before the run emulates a CPU without AVX-512).
(e) L-BFGS bookkeeping: seconds scipy's L-BFGS-B spends per evaluation outside the objective,
    with the pixel box bounds (the first engine) and on f(clip(x)) without bounds, keeping 10 past
    steps (the first engine's) and the engine's memory at that size (30 at 400 rows), on a cheap
    quadratic of the image's size, side by side.
(f) The defaults: one run with every default setting (the launch form's), its wall-clock and CPU
    seconds and its final full-size loss in float32; ``--images DIR`` saves the picture.
(g) Where a run's time goes: three-iteration runs in the automatic precision, their evaluations'
    network time measured inside the run against everything else (scipy's L-BFGS, clipping,
    conversions), with scipy's default L-BFGS memory (10 steps) and the engine's, alternating;
    and the same network timed alone.
(h) Where the start leads: one-size runs in the automatic precision from the photo and from the
    AdaIN picture at each ``--alphas`` strength, every iteration judged by the full-size float32
    loss (the judging is not part of the run): the loss at every fifth iteration, and with
    ``--target L`` the first iteration at which it is at most L (e.g. the L* of part c). The loss
    per iteration does not depend on the machine's load, so this part calibrates the default
    AdaIN strength on a shared machine.

(i) Backends (``--part backends``, not in ``all``): whole L-BFGS iterations on TensorFlow (scipy's
    L-BFGS on the host) and on JAX (optax's on the device), each engine in a process of its own, in
    rotating rounds; with ``--compare-with DIR`` also the engine of another checkout (the engine
    before a change) on TensorFlow, or on each of ``--compare-backends``, so that a change shows as a
    ratio measured side by side.
(j) Iterations (``--part iterations --set default``, not in ``all``): on each pair of the set, the
    default run (every setting at its default but the size; ``--lbfgs-memory`` changes L-BFGS's)
    for ``--reference-iterations``, its full-size float32 loss at every iteration: how far above its
    last loss it is at every fifth iteration and at the default's last, the first iteration within
    10, 5 and 2 % of it, the first from which five more gain less than 5 and 2 %, and how far the
    picture at each is from the last one; median and worst over the pairs. What the default
    iteration count is chosen on. ``--images DIR`` keeps each pair's picture at those iterations;
    ``--summarise JSON,JSON`` prints the table again from reports of runs over some pairs each, and
    ``--summarise JSON --against JSON`` compares two sets of runs of the same pairs iteration by
    iteration (e.g. two L-BFGS memories): where one run's loss stands against the other's, and at
    which iteration the other reaches the first's loss at the default's last iteration.
(k) Memory (``--part memory``, not in ``all``): each run's peak memory against ``stylecore.memory``'s
    figures (``tests.bench.memory``).

Without image paths it uses the procedural samples in ``stylecore.samples``. With ``--set default``
part (c) runs instead over a benchmark set of content × style pairs (``tests.bench.benchset``):
the reference and candidate starts side by side on each pair, then the median and the worst.
``--quick`` is its quick mode (fewer rows, iterations and candidates: ``benchset.QUICK_ROWS``).
"""

import math
import statistics
import sys
import time

import numpy as np

from PIL import Image

from stylecore import DEFAULTS, backend
from stylecore.engine import (
    CONTENT_LAYER, EVALUATIONS_PER_ITERATION, STYLE_LAYERS, LossFunctions, lbfgs_memory, lbfgs_scale, scale_plan,
)
from stylecore.images import caffe_bounds, deprocess, preprocess

# The first engine's L-BFGS memory, scipy's default: the time-to-quality reference keeps it.
FIRST_ENGINE_LBFGS_MEMORY = 10

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
    """The engine's loss on one image pair, counting evaluations and the best loss seen.

    ``functions``: compiled loss functions (the engine's of one precision by default). ``style`` may
    be a list of images, their Grams averaged with the weights ``blend`` as a run blends them.
    """

    def __init__(self, engine, content, style, weights, precision="float32", functions=None, blend=None):
        self.functions = functions or engine.loss_functions(precision)
        self.shape = content.shape
        self.content_target, _ = self.functions.targets(backend.constant(preprocess(content)[None]))
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        blend = list(blend) if blend else [1.0] * len(styles)
        grams = [self.functions.targets(backend.constant(preprocess(image)[None]))[1] for image in styles]
        self.style_grams = [sum(weight * per_style[layer] for weight, per_style in zip(blend, grams)) / sum(blend)
                            for layer in range(len(grams[0]))]
        self.weights = backend.constant(np.asarray(weights, np.float32))
        self.layer_weights = backend.constant(np.ones(len(self.functions.style_names), np.float32))
        self.scale = lbfgs_scale(self.shape)  # the same conditioning the engine's L-BFGS gets
        self.gradient_scale = backend.constant(self.scale)
        self.reset()

    def evaluate(self, pixels):
        """(loss, gradient) of float32 engine pixels (H, W, 3), as numpy."""
        total, _, gradient = self.functions.loss_and_gradient(
            backend.constant(np.asarray(pixels, np.float32).reshape((1,) + self.shape)), self.content_target,
            self.style_grams, self.weights, self.layer_weights, self.gradient_scale)
        return float(backend.to_numpy(total)), backend.to_numpy(gradient)

    def loss(self, pixels):
        """The loss of an image (float32 engine pixels), not counted."""
        return self.evaluate(pixels)[0]

    def reset(self, budget=None):
        self.count, self.best, self.budget, self.trace = 0, np.inf, budget, []

    def __call__(self, flat):
        if self.budget is not None and self.count >= self.budget:
            raise StopIteration
        total, gradient = self.evaluate(flat)
        self.count += 1
        self.best = min(self.best, total)
        self.trace.append(self.best)
        return self.scale * total, gradient.ravel().astype(np.float64)


def alternating(names, round_number):
    """The contenders' order in round ``round_number``: as given, then reversed, and so on."""
    return names if round_number % 2 == 0 else names[::-1]


def time_evaluations(contenders, rounds, per_round):
    """Time {name: evaluate()} in rounds, each round in a rotated order so that load from other
    processes hits all alike; return {name: [seconds per evaluation]}."""
    names = list(contenders)
    times = {name: [] for name in names}
    for name in names:
        contenders[name]()  # trace and warm up
    for i in range(rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            for _ in range(per_round):
                start = time.perf_counter()
                contenders[name]()
                times[name].append(time.perf_counter() - start)
    return times


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
    settings = DEFAULTS.replace(rows=content.shape[0], iterations=iterations, precision="float32",
                                start_rows=content.shape[0], init="content")
    engine.stylize(content, style, settings, record)
    return losses, time.perf_counter() - started


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


def compare_pauses(engine, content, style, iterations, pause_at):
    """Part (l): what pausing costs a run (its turn given to another user's run, or a worker's
    shutdown): the worker resumes it from the saved iteration's exact pixels, and L-BFGS starts its
    curvature memory afresh. The same run uninterrupted, paused once at ``pause_at``, and paused
    after every iteration (a run whose iterations outlast a turn while others wait), side by side."""
    settings = DEFAULTS.replace(rows=content.shape[0], start_rows=content.shape[0], iterations=iterations,
                                precision="float32", init="content")

    def resumed(pauses):
        losses, start, first = {}, None, 0
        started = time.perf_counter()
        for end in [*pauses, iterations]:
            reports = []

            def record(report, end=end):
                losses[report.iteration] = report.loss
                reports.append(report)
                return report.iteration >= end

            engine.stylize(content, style, settings, record, start=start, first_iteration=first)
            start, first = reports[-1].pixels(), reports[-1].iteration
        return losses, time.perf_counter() - started

    whole, whole_seconds = resumed([])
    once, once_seconds = resumed([pause_at])
    every, every_seconds = resumed(range(1, iterations))
    print(f"\n(l) loss per iteration: uninterrupted, paused once at iteration {pause_at}, paused after every "
          f"iteration ({content.shape[0]}x{content.shape[1]}, float32, from the content image)")
    print("    it    uninterrupted  paused once  ratio   paused every it  ratio")
    for number in sorted(whole):
        print(f"    {number:<5d} {whole[number]:<14.5g} {once[number]:<12.5g} {once[number] / whole[number]:<7.3f} "
              f"{every[number]:<16.5g} {every[number] / whole[number]:.3f}")
    caught_up = next((number for number in sorted(whole) if whole[number] <= every[iterations]), None)
    print(f"    the uninterrupted run reached the every-iteration run's final loss at iteration {caught_up}; "
          f"wall {whole_seconds:.0f} s, {once_seconds:.0f} s, {every_seconds:.0f} s")


def keras_vgg19(engine):
    """Keras' VGG19 model (no top) with the engine's weights."""
    import keras

    vgg = keras.applications.vgg19.VGG19(weights=None, include_top=False, input_shape=(None, None, 3))
    for name, kernel, bias in engine.vgg_layers():
        vgg.get_layer(name).set_weights([kernel, bias])
    return vgg


def keras_functions(vgg):
    """The engine's loss over Keras' VGG19 model, the engine's first formulation (float32)."""
    import keras

    names = STYLE_LAYERS + (CONTENT_LAYER,)
    model = keras.Model(vgg.inputs, [vgg.get_layer(name).output for name in names])

    def forward(image, _weights):  # the model holds its own weights
        return dict(zip(names, model(image, training=False)))

    forward.weights = ()
    return LossFunctions(backend.keras_ops(), forward)


def autodiff_gram(ops, features):
    """The Gram matrix with autodiff's own gradient (two products), as the engine had it before."""
    flat = ops.reshape(features, (-1, ops.shape(features)[-1]))
    return ops.matmul(ops.transpose(flat), flat) / ops.cast(ops.shape(flat)[0], features.dtype)


def autodiff_gram_functions(engine, precision):
    """The engine's loss in ``precision`` with autodiff differentiating the Gram matrices."""
    from stylecore.network import vgg_features

    ops = backend.keras_ops()
    forward = vgg_features(ops, engine.vgg_layers(), STYLE_LAYERS + (CONTENT_LAYER,), precision)
    return LossFunctions(ops, forward, gram=autodiff_gram)


# The time-to-quality variants, in the order they run (``--variants`` picks some).
TIME_TO_QUALITY_VARIANTS = ("defaults", "precision", "precision+adain", "double", "coarse-to-fine", "adain")


# One engine in a child process (Keras' backend is chosen once per process): it first times what a run of
# one iteration at the size takes beyond the same run again (the engine built, its programs compiled),
# and the same at a size it has not seen (compiled only); then each line "N" on stdin runs N iterations at
# the size from the photo; it answers
# seconds per evaluation (the optimiser included), the loss and the precision used. It speaks to older
# engines too (keyword settings).
BACKEND_CHILD = """
import sys, time
import stylecore
from stylecore.samples import landscape, swirls

rows, precision = int(sys.argv[1]), sys.argv[2]
engine = stylecore.Engine()

def run(iterations, rows=rows):
    cols = round(rows * 4 / 3)
    content, style = landscape(rows, cols), swirls(rows, cols)
    options = dict(rows=rows, start_rows=rows, iterations=iterations, init="content", precision=precision)
    started = time.perf_counter()
    if hasattr(stylecore.DEFAULTS, "replace"):
        result = engine.stylize(content, style, stylecore.DEFAULTS.replace(**options))
    else:
        result = engine.stylize(content, style, **options)
    seconds = time.perf_counter() - started
    return seconds, seconds / result.evaluations, result.loss, result.precision

# What the first run at a size costs beyond the same run again: building the engine (the first), compiling.
built = run(1)[0] - run(1)[0]
compiled = run(1, rows - 16)[0] - run(1, rows - 16)[0]
print("ready", built, compiled, getattr(engine, "solver", "scipy L-BFGS-B on the host"), "|", engine.device,
      flush=True)
for line in sys.stdin:
    _seconds, per_evaluation, loss, used = run(int(line))
    print(per_evaluation, loss, used, flush=True)
"""


def compare_backends(args):
    """(i) Seconds per evaluation of whole L-BFGS iterations (the optimiser included) on TensorFlow and
    on JAX, and with the engine of ``--compare-with`` (another checkout, e.g. the engine before the
    port) on each of ``--compare-backends``, each in a process of its own, in rotating rounds of
    ``--per-round`` iterations; and what each one's first run at the size, then at a new size (16 rows
    fewer), takes beyond the same run again: where JAX compiles (once per image size)."""
    import os
    import subprocess

    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout's root
    contenders = {chosen: (here, chosen) for chosen in args.backends.split(",")}
    if args.compare_with:
        for chosen in args.compare_backends.split(","):
            contenders[f"{chosen}, " + os.path.basename(os.path.abspath(args.compare_with))] = (
                args.compare_with, chosen)
    children, solvers, firsts = {}, {}, {}
    for name, (tree, chosen) in contenders.items():
        environment = dict(os.environ, KERAS_BACKEND=chosen, PYTHONPATH=tree, JAX_PLATFORMS="cpu")
        children[name] = subprocess.Popen(
            [sys.executable, "-c", BACKEND_CHILD, str(args.rows), args.backends_precision], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=environment, cwd=tree)
        _ready, built, compiled, solvers[name] = children[name].stdout.readline().split(" ", 3)
        firsts[name] = (float(built), float(compiled))
    times = {name: [] for name in children}
    names = list(children)
    for i in range(args.rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            children[name].stdin.write(f"{args.per_round}\n")
            children[name].stdin.flush()
            seconds, loss, used = children[name].stdout.readline().split()
            times[name].append(float(seconds))
    for child in children.values():
        child.stdin.close()
        child.wait()
    first = names[0]
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n(i) whole L-BFGS iterations at {args.rows} rows from the photo, precision {args.backends_precision} "
          f"({used}); seconds per evaluation, median of {args.rounds} rounds of {args.per_round} iterations")
    for name in names:
        print(f"    {name:<34} {median[name]:7.3f}  ({median[name] / median[first]:.3f}x {first})  "
              f"{solvers[name].strip()}")
    print(f"    a first run of 1 iteration, seconds beyond the same run again: at {args.rows} rows (the engine "
          f"built, its programs compiled), at {args.rows - 16} rows after it (compiled)")
    for name in names:
        built, compiled = firsts[name]
        print(f"    {name:<34} {built:7.2f}  {compiled:7.2f}")


def time_all(engine, content, style, weights, args):
    import tensorflow as tf

    vgg = keras_vgg19(engine)
    notebook = notebook_function(tf, vgg, content, style)
    x = preprocess(content) + np.random.default_rng(0).normal(0, 8, content.shape).astype(np.float32)
    x_tf = x[None].astype(np.float32)
    # bfloat16 only where the engine computes it: on a CPU that only emulates it, it is refused (the reason is printed)
    refusal = engine.emulation("bfloat16")
    precisions = ("float32",) if refusal else ("float32", "bfloat16")
    objectives = {"engine float32, Keras model": EngineObjective(engine, content, style, weights,
                                                                 functions=keras_functions(vgg))}
    for precision in precisions:
        objectives[f"engine {precision}"] = EngineObjective(engine, content, style, weights, precision)
        objectives[f"engine {precision}, autodiff Gram"] = EngineObjective(
            engine, content, style, weights, functions=autodiff_gram_functions(engine, precision))
    contenders = {"notebook": lambda: notebook(x_tf)[1].numpy()}
    contenders.update({name: (lambda o=o: o(x.ravel())) for name, o in objectives.items()})
    contenders["product"] = matrix_product(tf)
    times = time_evaluations(contenders, args.rounds, args.per_round)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n(a) seconds per loss+gradient evaluation (median of {len(times['notebook'])} each, "
          "rotating rounds)")
    print(f"    {'formulation':<62} {'s/eval':>7} {'vs notebook':>12}")
    for name, label in (
            ("notebook", "notebook (3-image batch, full VGG19, targets recomputed)"),
            ("engine float32, Keras model", "engine float32 through Keras' VGG19 model (first version)"),
            ("engine float32, autodiff Gram", "engine float32, TensorFlow's Gram gradient (2 products)"),
            ("engine float32", "engine float32 (plain TensorFlow network, to block5_conv2)"),
            ("engine bfloat16, autodiff Gram", "engine bfloat16, TensorFlow's Gram gradient (2 products)"),
            ("engine bfloat16", "engine bfloat16 convolutions (Grams, losses float32)")):
        if name in medians:
            print(f"    {label:<62} {medians[name]:7.3f} {medians['notebook'] / medians[name]:11.2f}x")
    if refusal:
        print(f"    bfloat16 not timed: {refusal}")
    else:
        print(f"    bfloat16 is {medians['engine float32'] / medians['engine bfloat16']:.2f}x faster than "
              "float32 in the engine")
    for precision in precisions:
        print(f"    with the one-product Gram gradient a {precision} evaluation takes "
              f"{medians[f'engine {precision}'] / medians[f'engine {precision}, autodiff Gram']:.0%} of the time "
              f"TensorFlow's gradient takes")
    gflop = 2 * convolution_gflop(engine.vgg_layers(), CONTENT_LAYER, *content.shape[:2])
    rate = 2 * PRODUCT_SIZE ** 3 / 1e9 / medians["product"]
    floor = gflop / rate
    print(f"    the convolutions of one evaluation (forward and input gradient) are {gflop:.0f} GFLOP; a "
          f"{PRODUCT_SIZE}² float32 matrix product, in the same rounds, runs at {rate:.0f} GFLOP/s, so at that "
          f"rate they alone take {floor:.2f} s: a float32 evaluation runs at "
          f"{floor / medians['engine float32']:.0%} of this machine's float32 matrix-product rate")


PRODUCT_SIZE = 2048


def matrix_product(tf):
    """A PRODUCT_SIZE² float32 matrix product: about the best rate this machine's cores reach in float32
    (through oneDNN, like the convolutions)."""
    a = tf.random.stateless_normal([PRODUCT_SIZE, PRODUCT_SIZE], seed=(1, 2))
    product = tf.function(lambda: tf.matmul(a, a))
    product().numpy()
    return lambda: product().numpy()


def convolution_gflop(layers, deepest, rows, cols):
    """GFLOP of VGG19's forward convolutions up to ``deepest`` on a rows × cols image (2 per multiply-add)."""
    total = 0
    for name, kernel, _bias in layers:
        if name.endswith("_conv1") and name != "block1_conv1":
            rows, cols = rows // 2, cols // 2
        height, width, channels_in, channels_out = kernel.shape
        total += 2 * rows * cols * height * width * channels_in * channels_out
        if name == deepest:
            break
    return total / 1e9


def time_preview(engine, content, style, args, repeats=5):
    engine.preview(content, style, rows=args.rows)  # build and warm up
    whole, alpha_only = [], []
    for i in range(repeats):
        engine.forget_encodings()
        start = time.perf_counter()
        engine.preview(content, style, rows=args.rows, alpha=1.0)
        whole.append(time.perf_counter() - start)
        start = time.perf_counter()
        engine.preview(content, style, rows=args.rows, alpha=0.5 + i / 20)
        alpha_only.append(time.perf_counter() - start)
    print(f"\n(d) AdaIN preview at {content.shape[0]}x{content.shape[1]}, "
          f"{engine.resolve_precision('auto')}, median of {repeats}")
    print(f"    whole pass (encode content and style, decode): {statistics.median(whole):.3f} s")
    print(f"    another alpha (encodings cached):              {statistics.median(alpha_only):.3f} s")


def time_preview_against_evaluation(engine, content, style, weights, rounds=4):
    """(d2) The whole AdaIN preview (both images encoded, AdaIN, decoded, converted to uint8, in the
    automatic precision) against one float32 Gatys loss-and-gradient evaluation at the same size, in
    alternating rounds (which goes first alternates too): the medians and their ratio, the issue's
    target being under 0.5 on CPUs with and without AVX-512. oneDNN's ISA can be capped for the whole
    process with ``ONEDNN_MAX_CPU_ISA=AVX2`` set before the run (TensorFlow), to emulate a CPU without
    AVX-512; the line printed says which cap was in force."""
    import os

    rows = content.shape[0]
    precision = engine.resolve_precision("auto", content.shape[0] * content.shape[1])
    judge = EngineObjective(engine, content, style, weights, "float32")
    x = preprocess(content) + np.random.default_rng(0).normal(0, 8, content.shape).astype(np.float32)

    def preview():
        engine.forget_encodings()
        engine.preview(content, style, rows=rows)

    scale = engine.preview_scale(content.shape[0] * content.shape[1])
    contenders = {"preview": preview, "evaluation": lambda: judge.evaluate(x)}
    if scale < 1:  # the same pass at the full size beside it, as before the preview was computed smaller
        def full_size_preview():
            engine.preview_scale = lambda pixels: 1.0
            try:
                preview()
            finally:
                del engine.preview_scale

        contenders["full-size preview"] = full_size_preview
    for contender in contenders.values():
        contender()  # build and warm up
    times = {name: [] for name in contenders}
    names = list(contenders)
    for i in range(max(rounds, 1)):
        for name in alternating(names, i):
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in times.items()}
    per_round = [p / e for p, e in zip(times["preview"], times["evaluation"])]
    print(f"\n(d2) the whole AdaIN preview ({precision}) against one float32 evaluation at "
          f"{content.shape[0]}x{content.shape[1]}, median of {len(per_round)} alternating rounds "
          f"(ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')}, "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}, "
          f"load average {os.getloadavg()[0]:.1f})")
    print(f"    whole preview {median['preview']:.3f} s, float32 evaluation {median['evaluation']:.3f} s: "
          f"ratio {median['preview'] / median['evaluation']:.2f} (rounds {min(per_round):.2f}-{max(per_round):.2f}; "
          f"target < 0.5)")
    if scale < 1:
        full = [f / e for f, e in zip(times["full-size preview"], times["evaluation"])]
        print(f"    computed at {scale:.2f} of each side and resized up (no native bfloat16 here); the same pass "
              f"at the full size: {median['full-size preview']:.3f} s, ratio "
              f"{median['full-size preview'] / median['evaluation']:.2f} (rounds {min(full):.2f}-{max(full):.2f})")


def time_defaults(engine, content, style, weights, args):
    """One run with every default setting, as the launch form starts it: what it costs and where it ends."""
    rows = content.shape[0]
    judge = EngineObjective(engine, content, style, weights, "float32")
    engine.stylize(content, style, DEFAULTS.replace(rows=rows, iterations=1))  # build and warm up
    wall, cpu = time.perf_counter(), time.process_time()
    result = engine.stylize(content, style, DEFAULTS.replace(rows=rows))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    plan = ", ".join(f"{size} rows to iteration {end}" for size, end in scale_plan(rows, DEFAULTS.start_rows,
                                                                                  DEFAULTS.iterations))
    print(f"\n(f) the defaults at {rows}x{content.shape[1]}: {DEFAULTS.iterations} iterations ({plan}), "
          f"start {DEFAULTS.init}, {result.precision}")
    print(f"    {wall:.0f} s wall, {cpu:.0f} s CPU ({cpu / wall:.2f} cores busy), {result.evaluations} evaluations, "
          f"full-size loss in float32 {judge.loss(result.pixels):.4f}")
    if args.images:
        import os

        os.makedirs(args.images, exist_ok=True)
        Image.fromarray(result.image).save(os.path.join(args.images, "defaults.png"))
        print(f"    picture written to {args.images}/defaults.png")


def time_run_overhead(engine, content, style, args, iterations=3):
    """Where a run's time goes: its evaluations' network time (timed inside the run) against the
    rest (scipy's L-BFGS, conversions, clipping, reports), with scipy's default L-BFGS memory and
    the engine's, side by side; and the same network timed alone."""
    rows = content.shape[0]
    precision = engine.resolve_precision("auto")
    options = dict(rows=rows, start_rows=rows, init="content", precision=precision, iterations=iterations)
    engine.stylize(content, style, DEFAULTS.replace(**dict(options, iterations=1)))  # build and warm up
    network = []  # (seconds, evaluations) per call of the engine's evaluation hook

    steps = {"scipy's default": FIRST_ENGINE_LBFGS_MEMORY, "the engine's": lbfgs_memory(content.size)}
    rounds = {name: [] for name in steps}
    for i in range(2):
        for name in alternating(list(steps), i):
            network.clear()
            start = time.perf_counter()
            result = engine.stylize(content, style, DEFAULTS.replace(**options), lbfgs_memory=steps[name],
                                    on_evaluation=lambda seconds, evaluations: network.append((seconds, evaluations)))
            whole = (time.perf_counter() - start) / result.evaluations
            rounds[name].append((whole, sum(s for s, _ in network) / sum(n for _, n in network)))
    objective = EngineObjective(engine, content, style, (DEFAULTS.content_weight, DEFAULTS.style_weight,
                                                         DEFAULTS.tv_weight), precision)
    alone = []
    for _ in range(5):
        start = time.perf_counter()
        objective.evaluate(result.pixels)
        alone.append(time.perf_counter() - start)
    print(f"\n(g) {precision} runs at {rows}x{content.shape[1]}, one size, {iterations} iterations "
          f"({result.evaluations} evaluations) each, twice in alternating order; seconds per evaluation")
    print(f"    {'L-BFGS memory':<26} {'whole run':>9} {'network':>8} {'the rest':>9}")
    for name, measured in rounds.items():
        whole = statistics.median(w for w, _ in measured)
        inside = statistics.median(n for _, n in measured)
        print(f"    {name + f' ({steps[name]} steps)':<26} {whole:9.3f} {inside:8.3f} {whole - inside:9.3f} "
              f"({(whole - inside) / whole:.0%})")
    print(f"    the same network timed alone: {statistics.median(alone):.3f} s (median of 5)")


def time_lbfgs_bookkeeping(shape, rounds, evaluations=None):
    """Seconds per evaluation that scipy's L-BFGS-B itself takes: bounded against unbounded-with-clip
    (the first engine's memory, 10 steps), and unbounded with the engine's memory at this size.
    Enough evaluations that the longer memory is full for most of them (a real run fills it within
    its first two iterations of 20 evaluations, then keeps it full)."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    low, high = (bound.ravel().astype(np.float64) for bound in caffe_bounds(shape))
    curvature = rng.uniform(0.5, 2.0, low.size)
    target = rng.uniform(low - 40, high + 40)  # some of the optimum lies beyond the bounds

    def quadratic(x):
        residual = x - target
        return float((curvature * residual * residual).sum()), 2 * curvature * residual

    def clipped(x):
        value, gradient = quadratic(np.clip(x, low, high))
        gradient[(x < low) | (x > high)] = 0.0
        return value, gradient

    steps = lbfgs_memory(low.size)
    evaluations = evaluations or max(40, 3 * steps)

    def bookkeeping(objective, bounds, memory=FIRST_ENGINE_LBFGS_MEMORY):
        inside = [0.0, 0]

        def timed(x):
            start = time.perf_counter()
            result = objective(x)
            inside[0] += time.perf_counter() - start
            inside[1] += 1
            return result

        start = time.perf_counter()
        minimize(timed, np.zeros(low.size), jac=True, method="L-BFGS-B", bounds=bounds,
                 options={"maxfun": evaluations, "maxiter": 10**9, "ftol": 0.0, "gtol": 0.0, "maxcor": memory})
        return (time.perf_counter() - start - inside[0]) / inside[1]

    box = np.stack([low, high], axis=1)
    contenders = {"box": lambda: bookkeeping(quadratic, box), "clip": lambda: bookkeeping(clipped, None),
                  "clip, engine's memory": lambda: bookkeeping(clipped, None, steps)}
    times = {name: [] for name in contenders}
    names = list(contenders)
    for i in range(rounds):
        for name in alternating(names, i):
            times[name].append(contenders[name]())
    b, u, m = (statistics.median(times[name]) for name in names)
    print(f"\n(e) L-BFGS-B's own seconds per evaluation at {low.size:,} variables, {evaluations} evaluations a run "
          f"(median of {rounds}, alternating)")
    print(f"    with box bounds, {FIRST_ENGINE_LBFGS_MEMORY} steps (first engine):  {b:.3f} s")
    print(f"    f(clip(x)) without bounds, {FIRST_ENGINE_LBFGS_MEMORY} steps:       {u:.3f} s   ({b / u:.1f}x less)")
    print(f"    f(clip(x)) without bounds, {steps} steps (now): {m:.3f} s   ({m - u:+.3f} s for the longer memory)")


class _Clock:
    """Wall and CPU seconds of a run, less the time spent judging it (the float32 loss)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def pause(self):
        return time.perf_counter(), time.process_time()

    def resume(self, paused):
        self.wall += time.perf_counter() - paused[0]
        self.cpu += time.process_time() - paused[1]

    def read(self):
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def run_to_quality(engine, content, style, judge, target, options, cap=None, lbfgs_memory=None):
    """Run ``options`` until the full-size float32 loss is at most ``target`` (None: to the end),
    or until ``cap`` wall seconds have passed; L-BFGS keeps ``lbfgs_memory`` steps (None: the engine's).

    Returns (wall seconds, CPU seconds, iteration, loss, image) when the target was reached (or
    at the end without a target), with iteration None when the run ended before reaching it.
    """
    seen = {"reached": target is None, "loss": math.nan, "image": None, "iteration": None}
    clock = _Clock()

    def watch(report):
        paused = clock.pause()
        seen["times"] = clock.read()
        if report.rows == content.shape[0]:
            seen.update(iteration=report.iteration, loss=judge.loss(report.pixels()), image=report.image())
            seen["reached"] = target is None or seen["loss"] <= target
        clock.resume(paused)
        return (target is not None and seen["reached"]) or (cap is not None and seen["times"][0] > cap)

    engine.stylize(content, style, DEFAULTS.replace(rows=content.shape[0], **options), watch, lbfgs_memory=lbfgs_memory)
    wall, cpu = seen["times"]
    return wall, cpu, seen["iteration"] if seen["reached"] else None, seen["loss"], seen["image"]


def time_to_quality(engine, content, style, weights, args):
    rows = content.shape[0]
    judge = EngineObjective(engine, content, style, weights, "float32")
    for precision in ("float32", engine.resolve_precision("auto")):  # build and warm up
        engine.stylize(content, style, DEFAULTS.replace(rows=rows, iterations=1, precision=precision, init="adain"))
    auto = engine.resolve_precision("auto")
    reference = dict(precision="float32", start_rows=rows, init="content")
    defaults = dict(precision=DEFAULTS.precision, start_rows=DEFAULTS.start_rows, init=DEFAULTS.init)
    variants = [  # the defaults first: each variant is stopped at the cap, so a long benchmark ends early
        ("defaults", f"all together: the defaults ({DEFAULTS.iterations} iterations)",
         dict(defaults, iterations=DEFAULTS.iterations)),
        ("precision", f"{auto} alone", dict(reference, precision=auto, iterations=args.reference_iterations)),
        ("precision+adain", f"{auto} + AdaIN start, one size",
         dict(reference, precision=auto, init="adain", iterations=args.reference_iterations)),
        ("double", f"all together, {2 * DEFAULTS.iterations} iterations",
         dict(defaults, iterations=2 * DEFAULTS.iterations)),
        ("coarse-to-fine", f"coarse to fine alone (from {DEFAULTS.start_rows} rows, {DEFAULTS.iterations} iterations)",
         dict(reference, start_rows=DEFAULTS.start_rows, iterations=DEFAULTS.iterations)),
        ("adain", "AdaIN start alone", dict(reference, init="adain", iterations=args.reference_iterations)),
    ]
    assert [key for key, _, _ in variants] == list(TIME_TO_QUALITY_VARIANTS)
    if args.variants:
        variants = [variant for variant in variants if variant[0] in args.variants]
    print(f"\n(c) time to quality at {rows}x{content.shape[1]}: reference = float32, one size, content "
          f"start, continuous L-BFGS keeping 10 steps (the first engine), {args.reference_iterations} iterations")
    wall, cpu, _, target, reference_image = run_to_quality(  # keeping scipy's 10 steps, as the first engine
        engine, content, style, judge, None, dict(reference, iterations=args.reference_iterations),
        lbfgs_memory=FIRST_ENGINE_LBFGS_MEMORY)
    cap = wall / args.give_up_below
    print(f"    reference: L* = {target:.4f}, {wall:.0f} s wall, {cpu:.0f} s CPU; each variant stops at L* "
          f"or after {cap:.0f} s (a speed-up below {args.give_up_below:g}x)")
    print(f"    {'configuration':<66} {'iteration':>9} {'wall s':>7} {'speed-up':>8} {'CPU s':>7} "
          f"{'speed-up':>8}")
    print(f"    {'reference':<66} {args.reference_iterations:>9} {wall:7.0f} {'1.00x':>8} {cpu:7.0f} "
          f"{'1.00x':>8}")
    images = {"reference": reference_image}
    for key, name, options in variants:
        v_wall, v_cpu, iteration, loss, image = run_to_quality(
            engine, content, style, judge, target, options, cap=cap)
        if iteration is None:
            print(f"    {name:<66} {'no':>9} {v_wall:7.0f} {'-':>8} {v_cpu:7.0f} {'-':>8}  "
                  f"(L* not reached: final full-size loss {loss:.4f})")
            continue
        print(f"    {name:<66} {iteration:>9} {v_wall:7.0f} {wall / v_wall:7.2f}x {v_cpu:7.0f} "
              f"{cpu / v_cpu:7.2f}x")
        images[key] = image
    if args.images:
        import os

        os.makedirs(args.images, exist_ok=True)
        names = {key: f"ttq-{key.replace('+', '-')}.png" for key in images}
        for key, image in images.items():
            Image.fromarray(image).save(os.path.join(args.images, names[key]))
        print(f"    images at L* written to {args.images}: {', '.join(names.values())}")


def _save_start_picture(folder, slug, iteration, pixels):
    """Part (h)'s picture of one start at one iteration, e.g. ``starts-adain-0.2-it17.png``."""
    import os

    os.makedirs(folder, exist_ok=True)
    Image.fromarray(deprocess(pixels)).save(os.path.join(folder, f"starts-{slug}-it{iteration}.png"))


def compare_starts(engine, content, style, weights, args):
    rows = content.shape[0]
    judge = EngineObjective(engine, content, style, weights, "float32")
    auto = engine.stylize(content, style, DEFAULTS.replace(rows=rows, iterations=1, init="adain",
                                                           start_rows=rows)).precision  # warm up
    starts = [("the photo", "photo", dict(init="content"))] + [
        (f"AdaIN picture, strength {alpha:g}", f"adain-{alpha:g}", dict(init="adain", adain_alpha=alpha))
        for alpha in args.alphas]
    marks = list(range(5, args.start_iterations + 1, 5))
    target = f", first iteration at loss <= {args.target:g}" if args.target is not None else ""
    print(f"\n(h) where the start leads at {rows}x{content.shape[1]}: one size, {auto}, up to "
          f"{args.start_iterations} iterations; full-size loss in float32{target}")
    print(f"    {'start':<34}" + "".join(f"{'it ' + str(mark):>9}" for mark in marks) + f"{'reached':>9}")
    keep = set(marks) | {DEFAULTS.iterations}
    for name, slug, options in starts:
        losses = {}

        def watch(report):
            pixels = report.pixels()
            losses[report.iteration] = judge.loss(pixels)
            if args.images and report.iteration in keep:
                _save_start_picture(args.images, slug, report.iteration, pixels)
            return args.target is not None and losses[report.iteration] <= args.target

        settings = DEFAULTS.replace(rows=rows, start_rows=rows, precision="auto", iterations=args.start_iterations,
                                    **options)
        engine.stylize(content, style, settings, watch)
        last = max(losses)  # the run stops at the first iteration at the target
        reached = last if args.target is not None and losses[last] <= args.target else None
        cells = "".join(f"{losses[mark]:9.4f}" if mark in losses else f"{'-':>9}" for mark in marks)
        print(f"    {name:<34}{cells}{reached if reached is not None else '-':>9}")
