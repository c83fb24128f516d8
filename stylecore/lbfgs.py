"""L-BFGS on the device (JAX): optax's ``lbfgs`` with its zoom line search, one compiled call per iteration.

On a GPU one VGG19 evaluation at 512² takes milliseconds, so an optimiser on the host (scipy: a
copy of the gradient off the device, float64 arithmetic over every pixel, a copy of the image
back, each evaluation) would leave the GPU idle most of the time. Here the image, the gradient and
L-BFGS's memory stay on the device; ``DeviceLBFGS.iterate`` runs L-BFGS steps inside one
``jax.lax.while_loop`` until the iteration's evaluations are spent, and returns only the losses and
the (clipped) picture for the iteration's report.

Like the host L-BFGS it minimises f(clip(x)) without bounds, with coordinates beyond their bounds pulled
back towards them (``engine.BOUND_PULL``), and the loss it sees is multiplied by the pixel count
(``engine.lbfgs_scale``).
Each line-search step is one evaluation of the loss and its gradient; an iteration's steps stop
once its 20 evaluations are reached, so an iteration may use one line search's few more (the next
iteration then has as many fewer: the count follows the run, not the iteration).
"""

MAX_LINESEARCH_STEPS = 20


class DeviceLBFGS:
    """The compiled L-BFGS loop over one set of loss functions (``engine.LossFunctions``), for images of
    any size (JAX compiles once per size), L-BFGS memory ``memory`` (past steps kept) and ``pull`` on the
    coordinates beyond their bounds (``engine.BOUND_PULL``)."""

    def __init__(self, functions, memory, pull):
        import jax
        import jax.numpy as jnp
        import optax

        optimizer = optax.lbfgs(
            memory_size=memory,
            linesearch=optax.scale_by_zoom_linesearch(
                max_linesearch_steps=MAX_LINESEARCH_STEPS, initial_guess_strategy="one"))

        def start(x, value, gradient):
            state = optax.tree.set(optimizer.init(x), value=value, grad=gradient)
            # init's counters are weakly typed, update's are not: fix the types, or the first iteration
            # of every image size would compile the loop twice.
            return jax.tree.map(lambda leaf: jnp.asarray(leaf, leaf.dtype), state)

        def iterate(x, state, budget, arguments, scale, low, high, network):
            content_target, style_grams, weights, layer_weights = arguments

            def scaled_loss(params):
                picture = jnp.clip(params, low, high)
                scaled, _ = functions.objective(picture[None], content_target, style_grams,
                                                weights, layer_weights, scale, network)
                return scaled + 0.5 * pull * jnp.sum(jnp.square(params - picture))

            def going(carry):
                _x, state, used, stalled = carry
                return (used < budget) & ~stalled & jnp.isfinite(optax.tree.get(state, "value"))

            def step(carry):
                x, state, used, _stalled = carry
                value, gradient = optax.tree.get(state, "value"), optax.tree.get(state, "grad")
                updates, state = optimizer.update(gradient, state, x, value=value, grad=gradient,
                                                  value_fn=scaled_loss)
                steps = optax.tree.get(state, "num_linesearch_steps")
                # At a stationary point the step is zero (or takes no evaluation): nothing more to do.
                stalled = (steps == 0) | ~jnp.any(updates != 0)
                return optax.apply_updates(x, updates), state, used + steps, stalled

            x, state, used, _stalled = jax.lax.while_loop(
                going, step, (x, state, jnp.zeros((), jnp.int32), jnp.zeros((), bool)))
            picture = jnp.clip(x, low, high)
            losses = functions.parts(picture[None], content_target, style_grams, layer_weights, network)
            return x, state, used, jnp.sum(weights * losses), losses, picture

        self._start = jax.jit(start)
        self._iterate = jax.jit(iterate)
        self._network = functions.network  # an argument of the program, not constants (backend.compile)

    def start(self, pixels, loss, gradient, scale):
        """The state at the start image, whose loss and gradient (× scale) the host evaluated."""
        import jax.numpy as jnp

        x = jnp.asarray(pixels, jnp.float32)
        return x, self._start(x, jnp.float32(loss) * scale, jnp.asarray(gradient, jnp.float32))

    def iterate(self, state, budget, arguments, scale, low, high):
        """Run L-BFGS steps until ``budget`` evaluations are spent; return the new state and (loss,
        (content, style, tv), pixels as float32 numpy, evaluations used)."""
        import jax.numpy as jnp
        import numpy as np

        x, optimiser_state = state
        x, optimiser_state, used, total, losses, picture = self._iterate(
            x, optimiser_state, jnp.int32(max(budget, 1)), arguments, scale, low, high, self._network)
        report = (float(total), tuple(float(value) for value in np.asarray(losses)), np.asarray(picture),
                  int(used))
        return (x, optimiser_state), report
