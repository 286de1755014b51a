"""One image, analysed: the search, the sweep and threshold, the noise control, every layer.

`analyse_image` returns the image's record for the manifest (JSON-ready) and the arrays its
figures are drawn from. Every epsilon the site prints for an image is in this record: the
article loop's answer (`attack.epsilon`), the grid point before it (`attack.previous_epsilon`),
the threshold where the label really changes (`attack.threshold`, also the first changed frame
of the sweep) and the one amplification factor its perturbation pictures use.
"""

from __future__ import annotations

import numpy as np

from generator.analysis.attack import AttackSettings, ImageSearch, search_steps, sign_noise
from generator.analysis.batching import ModelCall, Routine, run_routine, run_routines
from generator.analysis.butterfly import image_butterfly
from generator.analysis.probe import probe_steps
from generator.analysis.sweep import sweep_steps


def prediction(probabilities, class_names: list[str]) -> dict:
    """{"label", "index", "probability", "probabilities"} of one probability vector."""
    index = int(np.argmax(probabilities))
    return {"label": class_names[index], "index": index, "probability": float(probabilities[index]),
            "probabilities": [float(p) for p in probabilities]}


def outcome_of(targeted: bool, succeeded: bool, grid_index: int | None) -> str:
    """How the search ended: first_step, later, never (untargeted); target_reached, target_missed."""
    if targeted:
        return "target_reached" if succeeded else "target_missed"
    if grid_index is None:
        return "never"
    return "first_step" if grid_index == 0 else "later"


def effect_of(true_index: int | None, clean_index: int, adversarial_index: int) -> str:
    """What the perturbation did to the answer, judged against the truth when it is known:
    held (same label), fooled (right -> wrong), corrected (wrong -> right), changed (any other
    change, or the truth is unknown)."""
    if adversarial_index == clean_index:
        return "held"
    if true_index is None:
        return "changed"
    if clean_index == true_index:
        return "fooled"
    return "corrected" if adversarial_index == true_index else "changed"


def most_changed_map(layers: list[dict]) -> dict | None:
    """The feature map that changed most: in the feature-map layer (not the input) with the
    largest relative change, its channel that changed most. None when nothing changed."""
    maps = [layer for layer in layers[1:] if len(layer["shape"]) == 3 and layer["attack"]["top_channel"] is not None]
    if not maps:
        return None
    layer = max(maps, key=lambda item: item["attack"]["relative_l2"])
    return {"layer": layer["name"], "channel": layer["attack"]["top_channel"], "unit": layer["unit"]}


def analyse_image(model, x, true_index: int | None, settings: AttackSettings, class_names: list[str], *,
                  change_threshold: float = 0.05, noise_draws: int = 8, frames: int = 60) -> tuple[dict, dict]:
    """Attack image x (H, W, C) in [0, 1] and look inside the network.

    Returns (record, arrays). arrays: "x", "x_adv", "x_noise" (K, H, W, C), "gradient_sign",
    the sweep's arrays and every layer's activations ("clean/<name>", ...).
    """
    return run_routine(model, analysis_steps(model, x, true_index, settings, class_names,
                                             change_threshold=change_threshold, noise_draws=noise_draws,
                                             frames=frames))


def analyse_images(model, images: list[tuple], class_names: list[str], *, change_threshold: float = 0.05,
                   noise_draws: int = 8, frames: int = 60, on_points=None, on_round=None) -> list:
    """`analyse_image` for many images at once, their model calls merged (same results).

    images: [(x (H, W, C), true_index, AttackSettings)]. Returns, in order, (record, arrays) or
    the UserError that stopped that image. on_points(count): grid points the searches settle;
    on_round(): after each round of model calls (progress of long searches).
    """
    routines = [analysis_steps(model, x, true_index, settings, class_names, change_threshold=change_threshold,
                               noise_draws=noise_draws, frames=frames, on_points=on_points)
                for x, true_index, settings in images]
    return run_routines(model, routines, on_round=on_round)


def analysis_steps(model, x, true_index: int | None, settings: AttackSettings, class_names: list[str], *,
                   change_threshold: float = 0.05, noise_draws: int = 8, frames: int = 60,
                   on_points=None) -> Routine:
    """Routine of `analyse_image` (same arguments and result)."""
    x = np.asarray(x, dtype=np.float32)
    search = ImageSearch(model, x, settings)
    search.on_points = on_points
    found = yield from search_steps(search)
    goal_test = search.goal_met if found.succeeded else (lambda label: label != search.clean_label)
    sweep = yield from sweep_steps(search, found.epsilon, goal_test, frames=frames,
                                   bisection_steps=settings.bisection_steps)
    x_noise = np.stack([sign_noise(x, found.attack_epsilon, settings.noise_seed + draw, settings.clip_min,
                                   settings.clip_max) for draw in range(noise_draws)])
    noise_probabilities = yield ModelCall(x_noise)
    layers, activations = yield from probe_steps(search.model, x, found.x_adv, x_noise, change_threshold)
    k = found.grid_index
    top = float(sweep.epsilons[-1])
    record = {
        "true_label": class_names[true_index] if true_index is not None else None,
        "true_index": true_index,
        "clean": prediction(found.clean_probabilities, class_names),
        "misclassified": true_index is not None and true_index != found.clean_index,
        "attack": {
            "method": settings.method, "targeted": settings.targeted,
            "target": class_names[settings.target_index] if settings.targeted else None,
            "target_index": settings.target_index,
            "outcome": outcome_of(settings.targeted, found.succeeded, k),
            "effect": effect_of(true_index, found.clean_index, found.adversarial_index),
            "succeeded": found.succeeded, "fooled": found.fooled,
            "epsilon": found.epsilon, "grid_index": k, "steps": found.steps,
            "previous_epsilon": float(settings.grid_epsilons([k - 1])[0]) if k else None,
            "threshold": sweep.threshold,
            # The answer at the threshold: not always the answer at the grid epsilon.
            "threshold_index": int(sweep.labels[sweep.flip_index]) if sweep.flip_index >= 0 else None,
            "attack_epsilon": found.attack_epsilon,
            "linf": float(np.max(np.abs(found.x_adv - x))),
            "adversarial": prediction(found.adversarial_probabilities, class_names),
        },
        "noise": {"epsilon": found.attack_epsilon, "draws": noise_draws,
                  **prediction(noise_probabilities[0], class_names),
                  "changed_draws": int(np.sum(noise_probabilities.argmax(axis=1) != found.clean_index))},
        # One factor for every picture of this image's perturbation: the sweep's largest
        # perturbation is shown at half the grey range.
        "amplification": 0.5 / top if top > 0 else 1.0,
        "sweep": {"frames": int(len(sweep.epsilons)), "flip_index": sweep.flip_index,
                  "answer_index": sweep.answer_index, "last_epsilon": top},
        "layers": layers,
        "butterfly": image_butterfly(layers),
        "most_changed": most_changed_map(layers),
    }
    arrays = {"x": x, "x_adv": found.x_adv, "x_noise": x_noise, "gradient_sign": found.gradient_sign,
              **sweep.arrays(), **activations}
    return record, arrays
