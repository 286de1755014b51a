"""Adversarial attacks on an image classifier: FGSM, its iterative variants, the epsilon search.

Every model here is a Keras model that takes float32 images (N, H, W, C) with pixel values in
[0, 1] and returns softmax probabilities (N, n_classes); it is always called with
``training=False``. A :class:`~generator.analysis.batching.CompiledModel` of it may be passed
instead: the same computations, each traced once per input shape. TensorFlow is imported
inside the functions that need it.

The epsilon search of one image is a routine (see :mod:`generator.analysis.batching`):
:func:`search_steps` runs alone in :func:`minimal_epsilon`, or beside the searches of other
images, their model calls merged, in the images stage.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from generator.analysis.batching import CompiledModel, ModelCall, Routine, compiled_model, predict, run_routine
from generator.analysis.grid import grid_problem, grid_size
from generator.errors import UserError


def gradient_sign(model, x, labels, targeted=False):
    """Sign of the gradient of the cross-entropy loss with respect to the input images.

    Args:
        model: Keras model mapping images (N, H, W, C) to probabilities (N, n_classes).
        x: images, float array (N, H, W, C).
        labels: int array (N,). Untargeted: the labels to move away from.
            Targeted: the target classes to move towards.
        targeted: if True, the sign of the gradient of the *negated* loss, the direction
            in which the target classes become more likely.

    Returns:
        float32 array (N, H, W, C) with values in {-1, 0, 1} (a tensor inside a traced graph).
    """
    import tensorflow as tf

    if isinstance(model, CompiledModel):  # this very function, traced once per input shape
        return model.call_traced(gradient_sign, x, labels, targeted=bool(targeted))
    x = tf.convert_to_tensor(x, dtype=tf.float32)
    labels = tf.cast(labels, tf.int64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        probabilities = model(x, training=False)
        p_label = tf.maximum(tf.gather(probabilities, labels, batch_dims=1), 1e-37)
        # Cross-entropy is -log p_label (floored above: an underflowed 0 must not give NaN).
        # Adding log(sum p), which is 0 for softmax outputs, keeps the gradient exact when a
        # confident model's p_label rounds to 1.0 in float32.
        loss = tf.math.log(tf.reduce_sum(probabilities, axis=1)) - tf.math.log(p_label)
        if targeted:
            loss = -loss
    signs = tf.sign(tape.gradient(loss, x))
    return signs.numpy() if tf.executing_eagerly() else signs


def fgsm(model, x, labels, epsilon, clip_min=0.0, clip_max=1.0, targeted=False):
    """Fast gradient sign method: one step of size epsilon along the loss gradient's sign.

    x_adv = clip(x + epsilon * sign(grad_x loss(model(x), labels)), clip_min, clip_max).
    Targeted, the step goes down the loss of the target classes instead (labels = targets).

    Args:
        model: Keras model mapping images (N, H, W, C) to probabilities (N, n_classes).
        x: clean images, float array (N, H, W, C) in [clip_min, clip_max].
        labels: int array (N,): true (or predicted) labels, or the targets when targeted.
        epsilon: size of the perturbation in the L-infinity norm.
        clip_min, clip_max: valid pixel range.
        targeted: move towards `labels` instead of away from them.

    Returns:
        adversarial images, float32 array (N, H, W, C), with |x_adv - x| <= epsilon.
    """
    x = np.asarray(x, dtype=np.float32)
    step = np.float32(epsilon) * gradient_sign(model, x, labels, targeted)
    return np.clip(x + step, clip_min, clip_max)


def basic_iterative_method(model, x, labels, epsilon, step_size=None, iterations=10,
                           clip_min=0.0, clip_max=1.0, targeted=False):
    """Iterative FGSM (Kurakin et al.): `iterations` small signed steps, projected each time.

    Every step moves by `step_size` along the current gradient sign and is then clipped back
    into the L-infinity ball of radius epsilon around x and into [clip_min, clip_max].

    Args:
        x: images (N, H, W, C); labels: int array (N,).
        epsilon: scalar, or float array (N,) with one radius per image.
        step_size: scalar; None means 2.5 * epsilon / iterations (per image), the
            convention of Madry et al., so the walk can reach the ball's surface.

    Returns:
        float32 array (N, H, W, C).
    """
    return _iterate(model, x, labels, epsilon, step_size, iterations, clip_min, clip_max,
                    targeted, start_pattern=None)


def projected_gradient_descent(model, x, labels, epsilon, step_size=None, iterations=10,
                               clip_min=0.0, clip_max=1.0, targeted=False, seed=0):
    """PGD (Madry et al.): the iterative method started from a random point of the ball.

    The start is x + epsilon * u, with u one uniform pattern in [-1, 1]^(H, W, C) drawn from
    `seed` and shared by the whole batch, so an image's result does not depend on the batch
    it is computed in. Other arguments and the result as for `basic_iterative_method`.
    """
    pattern_shape = np.shape(x)[1:]
    start_pattern = np.random.default_rng(seed).uniform(-1.0, 1.0, pattern_shape)
    return _iterate(model, x, labels, epsilon, step_size, iterations, clip_min, clip_max,
                    targeted, start_pattern=start_pattern.astype(np.float32))


def _iterate(model, x, labels, epsilon, step_size, iterations, clip_min, clip_max, targeted,
             start_pattern):
    """The loop of BIM and PGD. epsilon and the step size may differ per image (N,)."""
    x = np.asarray(x, dtype=np.float32)
    radius = np.broadcast_to(np.asarray(epsilon, dtype=np.float64), (len(x),))
    step = 2.5 * radius / iterations if step_size is None else np.full(len(x), float(step_size))
    radius = radius.astype(np.float32).reshape(-1, 1, 1, 1)
    step = step.astype(np.float32).reshape(-1, 1, 1, 1)
    # Each pixel may move at most epsilon away from x and must stay in the valid range.
    lower = np.clip(x - radius, clip_min, clip_max)
    upper = np.clip(x + radius, clip_min, clip_max)
    x_adv = x if start_pattern is None else np.clip(x + radius * start_pattern, lower, upper)
    for _ in range(iterations):
        x_adv = np.clip(x_adv + step * gradient_sign(model, x_adv, labels, targeted), lower, upper)
    return x_adv


def sign_noise(x, epsilon, seed, clip_min=0.0, clip_max=1.0):
    """Random sign noise of L-infinity size epsilon: the control perturbation.

    Every pixel moves by +epsilon or -epsilon (fair coin, `seed`), then is clipped.
    x: float array of any shape, e.g. (H, W, C). Returns float32, same shape.
    """
    x = np.asarray(x, dtype=np.float32)
    signs = np.random.default_rng(seed).integers(0, 2, size=x.shape) * 2 - 1
    return np.clip(x + np.float32(epsilon) * signs.astype(np.float32), clip_min, clip_max)


METHODS = ("fgsm", "bim", "pgd")
# Batched and single-image forward passes may differ in the last bits (about 1e-6 in a
# probability). A grid point whose two best classes are closer than this is re-evaluated
# alone, exactly as the one-image loop does, so both searches agree on every label.
TIE_MARGIN = 1e-4
FIRST_CHUNK = 1  # an image that flips at the first grid point costs one small forward pass
CHUNK_GROWTH = 8  # grid points per batch: 1, 8, 64, then settings.chunk


@dataclasses.dataclass(frozen=True)
class AttackSettings:
    """How an image is attacked and how its minimal epsilon is searched.

    The grid is epsilon_start + k * epsilon_step for k = 0, 1, ... while <= epsilon_max.
    step_size None means 2.5 * epsilon / iterations for BIM and PGD. pgd_seed draws PGD's
    random start; noise_seed the sign noise control. bisection_steps halvings refine the
    boundary between the last unchanged and the first changed grid point. chunk caps the
    number of grid points sent to the model in one batch.
    """

    method: str = "fgsm"
    epsilon_start: float = 0.01
    epsilon_step: float = 0.0007
    epsilon_max: float = 0.3
    target_index: int | None = None
    iterations: int = 10
    step_size: float | None = None
    noise_seed: int = 0
    pgd_seed: int = 0
    bisection_steps: int = 12
    chunk: int = 64
    clip_min: float = 0.0
    clip_max: float = 1.0

    def __post_init__(self):
        checks = [
            ("method", self.method in METHODS, f"one of {', '.join(METHODS)}"),
            ("epsilon_start", self.epsilon_start >= 0, ">= 0"),
            ("epsilon_step", self.epsilon_step > 0, "> 0"),
            ("epsilon_max", self.epsilon_max >= self.epsilon_start, ">= epsilon_start"),
            ("iterations", self.iterations >= 1, ">= 1"),
            ("step_size", self.step_size is None or self.step_size > 0, "> 0 or null"),
            ("bisection_steps", self.bisection_steps >= 0, ">= 0"),
            ("chunk", self.chunk >= 1, ">= 1"),
            ("target_index", self.target_index is None or self.target_index >= 0, ">= 0"),
        ]
        for key, ok, rule in checks:
            if not ok:
                raise UserError(f"attack setting {key} must be {rule}, got {getattr(self, key)!r}")
        problem = grid_problem(self.epsilon_start, self.epsilon_step, self.epsilon_max)
        if problem:
            raise UserError(f"attack setting {problem}")

    @property
    def targeted(self) -> bool:
        return self.target_index is not None

    @property
    def grid_size(self) -> int:
        return grid_size(self.epsilon_start, self.epsilon_step, self.epsilon_max)

    def grid_epsilons(self, indices) -> np.ndarray:
        """float64 epsilons of grid indices (int array): always start + k * step, never a sum."""
        return self.epsilon_start + np.asarray(indices, dtype=np.int64) * self.epsilon_step


@dataclasses.dataclass
class EpsilonSearchResult:
    """Outcome of an epsilon search on one image (arrays without batch axis).

    succeeded: the goal was reached (targeted: the target label; untargeted: any other label).
    epsilon: the first grid epsilon reaching the goal (the article loop's answer); for a
    targeted attack that misses its target, the first grid epsilon that changed the label;
    None when the label never changed up to epsilon_max. grid_index: that epsilon's k on the
    grid (start + k * step), or None. fooled: the label at x_adv differs from the clean one.
    steps: grid points a one-by-one loop tries (all of them when the goal is not reached).
    x_adv (H, W, C): the attack at attack_epsilon, which is epsilon, else the largest grid
    epsilon. batches: model batches the grid search used (diagnostics).
    """

    fooled: bool
    succeeded: bool
    epsilon: float | None
    grid_index: int | None
    steps: int
    attack_epsilon: float
    x_adv: np.ndarray
    clean_index: int
    clean_probabilities: np.ndarray
    adversarial_index: int
    adversarial_probabilities: np.ndarray
    gradient_sign: np.ndarray
    batches: int


def predict_probabilities(model, x_batch) -> np.ndarray:
    """Probabilities (N, n_classes) for images (N, H, W, C), one forward pass."""
    return predict(model, x_batch)


@dataclasses.dataclass
class _GridPoint:
    """One tried epsilon: grid index k, epsilon, attacked image (H, W, C), probabilities."""

    k: int
    epsilon: float
    image: np.ndarray
    probabilities: np.ndarray

    @property
    def label(self) -> int:
        return int(np.argmax(self.probabilities))


class ImageSearch:
    """One image's search: its clean prediction, the attack's goal and direction.

    The model is used through its CompiledModel. ``on_points``, if set, is called with the
    number of grid points each step of the search settles (progress of long searches).
    """

    def __init__(self, model, x, settings: AttackSettings):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3:
            raise UserError(f"an attacked image must have shape (H, W, C), got {x.shape}")
        model = compiled_model(model)
        self.model, self.x, self.settings = model, x, settings
        self.on_points: Callable[[int], None] | None = None
        self.clean_probabilities = predict_probabilities(model, x[None])[0]
        self.clean_label = int(np.argmax(self.clean_probabilities))
        target = settings.target_index
        n_classes = len(self.clean_probabilities)
        if target is not None and target >= n_classes:
            raise UserError(f"attack target index {target} is out of range for {n_classes} classes")
        if target is not None and target == self.clean_label:
            raise UserError(f"attack target index {target} is already the model's prediction")
        # Untargeted attacks move away from the model's own clean answer, as the article does.
        self.loss_label = self.clean_label if target is None else target
        self.direction = gradient_sign(model, x[None], [self.loss_label], settings.targeted)[0]

    def goal_met(self, label) -> bool:
        """Targeted: the label is the target. Untargeted: the label differs from the clean one."""
        if self.settings.targeted:
            return label == self.settings.target_index
        return label != self.clean_label

    def attack(self, epsilons: np.ndarray) -> np.ndarray:
        """Adversarial images (E, H, W, C) of this one image, one per epsilon (E,).

        BIM and PGD run here, on this image's epsilons only: their gradients are taken in
        batches of exactly the shapes a one-image search uses."""
        s, n = self.settings, len(epsilons)
        if s.method == "fgsm":
            eps = epsilons.astype(np.float32).reshape(-1, 1, 1, 1)
            return np.clip(self.x[None] + eps * self.direction[None], s.clip_min, s.clip_max)
        images = np.repeat(self.x[None], n, axis=0)
        labels = np.full(n, self.loss_label)
        common = dict(step_size=s.step_size, iterations=s.iterations, clip_min=s.clip_min,
                      clip_max=s.clip_max, targeted=s.targeted)
        if s.method == "bim":
            return basic_iterative_method(self.model, images, labels, epsilons, **common)
        return projected_gradient_descent(self.model, images, labels, epsilons, seed=s.pgd_seed,
                                          **common)

    def evaluate_steps(self, epsilons: np.ndarray) -> Routine:
        """Routine: (adversarial images (E, H, W, C), probabilities (E, n_classes)) at the epsilons (E,).

        Near ties are evaluated again alone, as a one-image loop evaluates every point, so the
        labels match that loop's (see TIE_MARGIN)."""
        images = self.attack(epsilons)
        probabilities = np.array((yield ModelCall(images)))
        if len(epsilons) > 1:
            top_two = np.sort(probabilities, axis=1)[:, -2:]
            for i in np.flatnonzero(top_two[:, 1] - top_two[:, 0] < TIE_MARGIN):
                images[i:i + 1], probabilities[i:i + 1] = yield from self.evaluate_steps(epsilons[i:i + 1])
        return images, probabilities

    def evaluate(self, epsilons: np.ndarray):
        """``evaluate_steps`` run on its own: (images (E, H, W, C), probabilities (E, n_classes))."""
        return run_routine(self.model, self.evaluate_steps(epsilons))

    def try_epsilon(self, k: int) -> _GridPoint:
        """The attack at grid epsilon number k, alone in its model call."""
        epsilon = self.settings.grid_epsilons([k])
        images, probabilities = self.evaluate(epsilon)
        return _GridPoint(k, float(epsilon[0]), images[0], probabilities[0])

    def result(self, goal: _GridPoint | None, first_change: _GridPoint | None,
               last: _GridPoint, batches: int) -> EpsilonSearchResult:
        """The outcome: the goal point if reached; else (targeted) the first label change;
        else the last grid point tried."""
        shown = goal or first_change or last
        return EpsilonSearchResult(
            fooled=shown.label != self.clean_label, succeeded=goal is not None,
            epsilon=shown.epsilon if (goal or first_change) else None,
            grid_index=shown.k if (goal or first_change) else None, steps=goal.k + 1 if goal else self.settings.grid_size,
            attack_epsilon=shown.epsilon, x_adv=shown.image,
            clean_index=self.clean_label, clean_probabilities=self.clean_probabilities,
            adversarial_index=shown.label, adversarial_probabilities=shown.probabilities,
            gradient_sign=self.direction, batches=batches)


def plain_epsilon_loop(model, x, settings: AttackSettings = AttackSettings()) -> EpsilonSearchResult:
    """The article's epsilon search, one epsilon and one model call per step.

    eps = epsilon_start; while the label is unchanged (targeted: not yet the target) and
    eps <= epsilon_max: eps += epsilon_step. The k-th epsilon is computed as start + k * step
    rather than by repeated addition, so it is the very number `minimal_epsilon` reports.
    x: image (H, W, C).
    """
    search = ImageSearch(model, x, settings)
    first_change = None
    for k in range(settings.grid_size):
        point = search.try_epsilon(k)  # epsilon = start + k * step
        if first_change is None and point.label != search.clean_label:
            first_change = point
        if search.goal_met(point.label):
            return search.result(point, first_change, point, batches=k + 1)
    return search.result(None, first_change, point, batches=settings.grid_size)


def minimal_epsilon(model, x, settings: AttackSettings = AttackSettings(),
                    search: ImageSearch | None = None) -> EpsilonSearchResult:
    """The article's epsilon search, batched: same epsilon and steps as `plain_epsilon_loop`.

    The gradient sign is taken once at the clean image (FGSM); grid points are evaluated in
    batches that grow from FIRST_CHUNK to settings.chunk (see search_steps). x: image
    (H, W, C); `search` an ImageSearch of it already made (its clean prediction and direction
    are reused). Not reaching the goal up to epsilon_max is a normal result; a targeted attack
    that misses its target reports the first change of label instead.
    """
    search = search or ImageSearch(model, x, settings)
    return run_routine(search.model, search_steps(search))


def search_steps(search: ImageSearch) -> Routine:
    """Routine of `minimal_epsilon`: the grid search of one image; returns its EpsilonSearchResult.

    Grid points are evaluated in batches that grow from FIRST_CHUNK to settings.chunk, so an
    image that flips at once costs one small forward pass and one needing hundreds of steps a
    handful of large ones. For BIM and PGD each grid epsilon is its own iterative attack, run
    side by side in the batch.
    """
    settings = search.settings
    n, start, size, batches = settings.grid_size, 0, FIRST_CHUNK, 0
    goal = first_change = None
    while start < n and goal is None:
        indices = np.arange(start, min(n, start + size))
        epsilons = settings.grid_epsilons(indices)
        images, probabilities = yield from search.evaluate_steps(epsilons)
        batches += 1
        points = [_GridPoint(int(k), float(e), image, p)
                  for k, e, image, p in zip(indices, epsilons, images, probabilities)]
        changed = [point for point in points if point.label != search.clean_label]
        first_change = first_change or (changed[0] if changed else None)
        goal = next((point for point in points if search.goal_met(point.label)), None)
        start, size = indices[-1] + 1, min(size * CHUNK_GROWTH, settings.chunk)
        if search.on_points is not None:
            # Once the goal is met the points after it are settled too: the bar completes.
            search.on_points(len(indices) if goal is None else len(indices) + n - start)
    return search.result(goal, first_change, points[-1], batches)
