"""The butterfly effect, measured like for like.

The article's claim: a change too small to see grows through convolution, activation and
pooling until the output is different. Measured per layer as the relative change
||f(x') - f(x)|| / ||f(x)|| of the layer's activations, under the attack and under random sign
noise of the same size (the control). Their ratio says how much more the network amplifies
the attack's direction than a random one of the same size. Feature maps (layers with (h, w, c)
outputs, the input included) are compared with each other; the output probabilities are a
different kind of quantity (a softmax vector) and are reported apart.

Every sentence the site writes about growth is chosen from the verdicts computed here.
"""

from __future__ import annotations

import math
import statistics
from typing import Sequence

# The deepest feature maps count as "amplified" when the attack changes them at least this
# many times as much as random noise of the same size does.
AMPLIFIED_RATIO = 2.0
# The change "grows" when the deepest feature maps change at least this many times as much as
# the input does.
GROWTH = 1.5


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _ratio(a, b):
    return a / b if _finite(a) and _finite(b) and b > 0 else None


def image_butterfly(layers: list[dict]) -> dict:
    """Facts about one image from its probed layers (input first, as probe_image returns them).

    Returns {"maps": [layer names of feature maps], "attack": [...], "noise": [...],
    "ratio": [...] (per feature map), "first", "deepest" (names: the input and the last
    feature map), "growth" (attack deepest / first), "noise_growth", "deepest_ratio",
    "rises" (steps where the attack's change increases), "steps", "verdict", and "output":
    {"name", "attack", "noise", "ratio"} or None}. verdict is one of
    "amplified" (deepest_ratio >= AMPLIFIED_RATIO), "grows_like_noise" (growth >= GROWTH
    but not amplified), "no_growth" (neither).
    """
    maps = [layer for layer in layers if len(layer["shape"]) == 3]
    last = layers[-1] if layers and len(layers[-1]["shape"]) == 1 else None
    attack = [layer["attack"]["relative_l2"] for layer in maps]
    noise = [layer["noise"]["relative_l2"] for layer in maps]
    ratio = [_ratio(a, n) for a, n in zip(attack, noise)]
    facts = {"maps": [layer["name"] for layer in maps], "attack": attack, "noise": noise, "ratio": ratio,
             "first": None, "deepest": None, "growth": None, "noise_growth": None, "deepest_ratio": None,
             "rises": 0, "steps": 0, "verdict": "no_growth", "output": None}
    if last is not None:
        facts["output"] = {"name": last["name"], "attack": last["attack"]["relative_l2"],
                           "noise": last["noise"]["relative_l2"],
                           "ratio": _ratio(last["attack"]["relative_l2"], last["noise"]["relative_l2"])}
    if len(maps) < 2:
        return facts
    facts.update(first=maps[0]["name"], deepest=maps[-1]["name"], growth=_ratio(attack[-1], attack[0]),
                 noise_growth=_ratio(noise[-1], noise[0]), deepest_ratio=ratio[-1],
                 rises=sum(1 for a, b in zip(attack, attack[1:]) if b > a), steps=len(attack) - 1)
    if _finite(facts["deepest_ratio"]) and facts["deepest_ratio"] >= AMPLIFIED_RATIO:
        facts["verdict"] = "amplified"
    elif _finite(facts["growth"]) and facts["growth"] >= GROWTH:
        facts["verdict"] = "grows_like_noise"
    return facts


def experiment_butterfly(facts: Sequence[dict]) -> dict:
    """Facts over the images of one experiment (their image_butterfly results).

    Returns {"images": n, "verdicts": {verdict: count}, "maps": layer names (of the first
    image), "median_ratio": per layer (None where no image has a value), "median_growth",
    "median_deepest_ratio", "median_output_ratio", "verdict": the verdict of most images
    (ties: the weaker one)}.
    """
    verdicts = {name: 0 for name in ("amplified", "grows_like_noise", "no_growth")}
    for item in facts:
        verdicts[item["verdict"]] += 1
    maps = facts[0]["maps"] if facts else []
    same_layers = [item for item in facts if item["maps"] == maps]

    def median(values):
        values = [v for v in values if _finite(v)]
        return statistics.median(values) if values else None

    overall = max(reversed(list(verdicts)), key=lambda name: verdicts[name]) if facts else None
    return {"images": len(facts), "verdicts": verdicts, "maps": maps,
            "median_ratio": [median(item["ratio"][i] for item in same_layers) for i in range(len(maps))],
            "median_growth": median(item["growth"] for item in facts),
            "median_deepest_ratio": median(item["deepest_ratio"] for item in facts),
            "median_output_ratio": median((item["output"] or {}).get("ratio") for item in facts),
            "verdict": overall}
