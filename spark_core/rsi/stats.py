"""The statistical tests the A/B decision uses (standard library only).

* :func:`two_proportion_z_test`: success rates, pooled standard error, normal approximation.
* :func:`mann_whitney_u`: latencies and scores, with the tie-corrected normal approximation
  and a continuity correction (no assumption about the shape of the distributions).
* :func:`bootstrap_mean_diff`: a percentile confidence interval of a difference of means,
  from a seeded ``random.Random`` so the same data always gives the same interval.

``alternative`` is ``"greater"`` (b above a), ``"less"`` (b below a) or ``"two-sided"``.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

__all__ = [
    "StatTest",
    "normal_cdf",
    "two_proportion_z_test",
    "mann_whitney_u",
    "bootstrap_mean_diff",
]

_ALTERNATIVES = ("greater", "less", "two-sided")


@dataclass(frozen=True)
class StatTest:
    """The outcome of one test.

    Attributes:
        name: The test (``two_proportion_z``, ``mann_whitney_u``).
        metric: What was compared (``success_rate``, ``latency_ms``, ``score``).
        alternative: ``greater``, ``less`` or ``two-sided`` (b relative to a).
        statistic: z (both tests report their normal approximation's z).
        p_value: The p-value.
    """

    name: str
    metric: str
    alternative: str
    statistic: float
    p_value: float

    def significant(self, alpha: float) -> bool:
        """Whether ``p_value < alpha``.

        Args:
            alpha: The significance level.

        Returns:
            Whether the test rejects its null hypothesis.
        """
        return self.p_value < alpha

    def to_dict(self) -> Dict[str, object]:
        """Return the test as JSON-ready data.

        Returns:
            A dict.
        """
        return asdict(self)


def normal_cdf(z: float) -> float:
    """The standard normal cumulative distribution at ``z``.

    Args:
        z: The point.

    Returns:
        P(Z <= z).
    """
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _p_value(z: float, alternative: str) -> float:
    if alternative not in _ALTERNATIVES:
        raise ValueError(
            f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}"
        )
    if alternative == "greater":
        return 1.0 - normal_cdf(z)
    if alternative == "less":
        return normal_cdf(z)
    return min(1.0, 2.0 * (1.0 - normal_cdf(abs(z))))


def two_proportion_z_test(
    successes_a: int,
    n_a: int,
    successes_b: int,
    n_b: int,
    *,
    alternative: str = "greater",
    metric: str = "success_rate",
) -> StatTest:
    """Compare two success rates.

    Args:
        successes_a: Successes of arm a.
        n_a: Trials of arm a (> 0).
        successes_b: Successes of arm b.
        n_b: Trials of arm b (> 0).
        alternative: What the test looks for in b relative to a.
        metric: Name reported.

    Returns:
        The test (p = 1 when both arms are all successes or all failures).

    Raises:
        ValueError: A count is out of range or ``alternative`` is unknown.
    """
    if (
        n_a <= 0
        or n_b <= 0
        or not 0 <= successes_a <= n_a
        or not 0 <= successes_b <= n_b
    ):
        raise ValueError("two_proportion_z_test needs 0 <= successes <= n and n > 0")
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = 0.0 if se == 0 else (successes_b / n_b - successes_a / n_a) / se
    p = 1.0 if se == 0 else _p_value(z, alternative)
    return StatTest("two_proportion_z", metric, alternative, z, p)


def _ranks(values: Sequence[float]) -> Tuple[List[float], List[int]]:
    """Average ranks (1-based) of ``values`` and the sizes of the tie groups."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    ties = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def mann_whitney_u(
    a: Sequence[float],
    b: Sequence[float],
    *,
    alternative: str = "greater",
    metric: str = "value",
) -> StatTest:
    """Mann-Whitney U test of whether b's values tend to be above (or below) a's.

    Args:
        a: Sample of arm a (non-empty).
        b: Sample of arm b (non-empty).
        alternative: What the test looks for in b relative to a.
        metric: Name reported.

    Returns:
        The test; ``statistic`` is the z of U_b (p = 1 when every value is tied).

    Raises:
        ValueError: A sample is empty or ``alternative`` is unknown.
    """
    if not a or not b:
        raise ValueError("mann_whitney_u needs two non-empty samples")
    n_a, n_b = len(a), len(b)
    n = n_a + n_b
    ranks, ties = _ranks(list(a) + list(b))
    u_b = sum(ranks[n_a:]) - n_b * (n_b + 1) / 2.0
    mean = n_a * n_b / 2.0
    tie_term = sum(t**3 - t for t in ties) / (n * (n - 1)) if n > 1 else 0.0
    var = n_a * n_b / 12.0 * ((n + 1) - tie_term)
    if var <= 0:
        return StatTest("mann_whitney_u", metric, alternative, 0.0, 1.0)
    diff = u_b - mean
    if alternative == "two-sided":
        diff = math.copysign(max(abs(diff) - 0.5, 0.0), diff)
    elif alternative == "greater":
        diff -= 0.5
    else:
        diff += 0.5
    z = diff / math.sqrt(var)
    return StatTest("mann_whitney_u", metric, alternative, z, _p_value(z, alternative))


def bootstrap_mean_diff(
    a: Sequence[float],
    b: Sequence[float],
    *,
    seed: int = 0,
    iterations: int = 2000,
    confidence: float = 0.95,
) -> Tuple[float, float, float]:
    """Mean of b minus mean of a, with a percentile bootstrap confidence interval.

    Args:
        a: Sample of arm a (non-empty).
        b: Sample of arm b (non-empty).
        seed: Seed of the resampling (same data and seed, same interval).
        iterations: Resamples.
        confidence: Coverage of the interval (0 < confidence < 1).

    Returns:
        ``(difference, low, high)``.

    Raises:
        ValueError: A sample is empty, or ``iterations`` / ``confidence`` is out of range.
    """
    if not a or not b:
        raise ValueError("bootstrap_mean_diff needs two non-empty samples")
    if iterations < 1 or not 0 < confidence < 1:
        raise ValueError(
            "bootstrap_mean_diff needs iterations >= 1 and 0 < confidence < 1"
        )
    rng = random.Random(seed)
    observed = sum(b) / len(b) - sum(a) / len(a)
    diffs = sorted(
        sum(rng.choices(b, k=len(b))) / len(b) - sum(rng.choices(a, k=len(a))) / len(a)
        for _ in range(iterations)
    )
    tail = (1 - confidence) / 2
    low = diffs[min(len(diffs) - 1, int(math.floor(tail * iterations)))]
    high = diffs[min(len(diffs) - 1, int(math.ceil((1 - tail) * iterations)) - 1)]
    return observed, low, high
