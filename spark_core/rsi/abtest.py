"""Test: an A/B run of baseline vs candidate on the same inputs, and a stated decision.

Both specs run once per input (in a seeded random order per pair, so neither arm always
goes first), each run on a freshly loaded graph, with tools replaced by the mission's
``simulation.tools`` stand-ins where it has them, the given stand-in models, and the
governance policies enforced. Per arm: success rate, latency (mean, p95), mean cost, and
mean score when a scoring function is given (a run that did not complete scores 0).

The decision, at level ``alpha`` per test:

* fewer than ``min_samples`` inputs: ``inconclusive`` (no "won by one run");
* the candidate's mean cost per run above ``max_cost_per_run``: ``baseline``;
* success rate significantly lower (two-proportion z-test, one-sided) or score
  significantly lower (Mann-Whitney U, one-sided): ``baseline``;
* success rate significantly higher, or score significantly higher, or latency
  significantly lower (Mann-Whitney U, one-sided): ``candidate``;
* otherwise ``inconclusive``.

The latency difference also gets a seeded bootstrap 95 % interval, for the report.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from spark_core.errors import SparkError
from spark_core.rsi.analysis import percentile
from spark_core.rsi.experience import ExperienceDatabase, RunRecord, Scorer
from spark_core.rsi.stats import (
    StatTest,
    bootstrap_mean_diff,
    mann_whitney_u,
    two_proportion_z_test,
)
from spark_core.spec import MissionSpec

__all__ = [
    "ABTestConfig",
    "ArmMetrics",
    "ABTestResult",
    "run_ab_test",
    "combined_policy",
]

#: Stand-in models per A/B run: node id -> model, or a function making a fresh mapping.
ModelsArg = Optional[Any]


@dataclass(frozen=True)
class ABTestConfig:
    """How A/B tests run and decide.

    Attributes:
        min_samples: Inputs needed (each runs once per arm) before any decision.
        max_samples: Inputs used at most (the most recent ones).
        alpha: Significance level of each test.
        seed: Seeds the run order and the bootstrap.
        bootstrap_iterations: Resamples of the latency interval.
        concurrency: Input pairs run at once.
        allow_real_tools: Let tools without a simulation stand-in run for real.
    """

    min_samples: int = 20
    max_samples: int = 200
    alpha: float = 0.05
    seed: int = 0
    bootstrap_iterations: int = 2000
    concurrency: int = 4
    allow_real_tools: bool = True


@dataclass
class ArmMetrics:
    """One arm's figures.

    Attributes:
        version: What ran (``"baseline"`` or the proposal id).
        runs: Runs made.
        successes: Runs that completed.
        success_rate: successes / runs.
        mean_latency_ms: Mean wall time of a run.
        p95_latency_ms: 95th percentile wall time.
        mean_cost_usd: Mean cost per run.
        mean_score: Mean score (None without a scoring function).
        errors: Up to five distinct error texts.
    """

    version: str
    runs: int = 0
    successes: int = 0
    success_rate: float = 0.0
    mean_latency_ms: float = 0.0
    p95_latency_ms: float = 0.0
    mean_cost_usd: float = 0.0
    mean_score: Optional[float] = None
    errors: List[str] = field(default_factory=list)


@dataclass
class ABTestResult:
    """An A/B test's figures, tests and decision.

    Attributes:
        proposal_id: The candidate's proposal.
        samples: Inputs run on each arm.
        baseline: The baseline's figures.
        candidate: The candidate's figures.
        tests: The statistical tests made.
        latency_diff_ms: Candidate minus baseline mean latency, with a bootstrap interval:
            ``{"diff", "low", "high", "confidence"}`` (None without samples).
        decision: ``"candidate"``, ``"baseline"`` or ``"inconclusive"``.
        reason: Why, in words.
        alpha: The significance level used.
    """

    proposal_id: str
    samples: int
    baseline: ArmMetrics
    candidate: ArmMetrics
    tests: List[StatTest] = field(default_factory=list)
    latency_diff_ms: Optional[Dict[str, float]] = None
    decision: str = "inconclusive"
    reason: str = ""
    alpha: float = 0.05

    @property
    def won(self) -> bool:
        """Whether the candidate won."""
        return self.decision == "candidate"

    def test(self, metric: str, alternative: str) -> Optional[StatTest]:
        """Return the test of ``metric`` in direction ``alternative``, if it was made.

        Args:
            metric: ``success_rate``, ``latency_ms`` or ``score``.
            alternative: ``greater`` or ``less``.

        Returns:
            The test, or None.
        """
        return next(
            (
                t
                for t in self.tests
                if t.metric == metric and t.alternative == alternative
            ),
            None,
        )

    def to_dict(self) -> Dict[str, Any]:
        """Return the result as JSON-ready data.

        Returns:
            A dict.
        """
        data = asdict(self)
        data["tests"] = [t.to_dict() for t in self.tests]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ABTestResult:
        """Build a result from :meth:`to_dict` output.

        Args:
            data: The dict.

        Returns:
            The result.
        """
        return cls(
            proposal_id=str(data["proposal_id"]),
            samples=int(data["samples"]),
            baseline=ArmMetrics(**data["baseline"]),
            candidate=ArmMetrics(**data["candidate"]),
            tests=[StatTest(**t) for t in data.get("tests", [])],
            latency_diff_ms=data.get("latency_diff_ms"),
            decision=str(data.get("decision", "inconclusive")),
            reason=str(data.get("reason", "")),
            alpha=float(data.get("alpha", 0.05)),
        )


def combined_policy(policies: Sequence[Mapping[str, Any]]) -> Any:
    """One ``PolicySet`` holding the rules of several (a graph takes one).

    Deny-overrides makes the union as strict as each set alone; rule names get their set's
    name as a prefix, and the default effect is the strictest of the sets'.

    Args:
        policies: ``PolicySet.to_dict()`` forms.

    Returns:
        The combined set, or None when there are no policies.
    """
    from spark_core.governance import PolicyEffect, PolicySet

    if not policies:
        return None
    sets = [PolicySet.from_dict(p) for p in policies]
    rules = []
    for policy in sets:
        for rule in policy.rules:
            data = rule.to_dict()
            data["name"] = f"{policy.name}/{rule.name}"
            rules.append(data)
    strictest = max((s.default_effect for s in sets), key=lambda e: e.strength)
    return PolicySet(
        "+".join(s.name for s in sets), rules, default_effect=PolicyEffect(strictest)
    )


def _stand_ins(mission: MissionSpec, loader: Any) -> Dict[str, Any]:
    from spark_core.spec.simulation import SimulatedTool

    tools: Dict[str, Any] = {}
    for spec in mission.simulation.tools if mission.simulation is not None else []:
        handler = (
            None if spec.handler is None else loader.resolve(spec.handler, kind="tool")
        )
        tools[spec.name] = SimulatedTool(spec.name, spec.static_response, handler)
    return tools


class _Arm:
    """Runs one spec on inputs, one fresh graph per run, recording each run."""

    def __init__(
        self,
        label: str,
        mission: MissionSpec,
        *,
        loader: Any,
        database: ExperienceDatabase,
        graph_version: str,
        policies: Sequence[Mapping[str, Any]],
        scorer: Optional[Scorer],
        models: ModelsArg,
        allow_real_tools: bool,
    ) -> None:
        from spark_core.rsi.proposals import mission_policies

        self.label = label
        self.mission = mission
        self.loader = loader
        self.database = database
        self.graph_version = graph_version
        self.policy = combined_policy(
            list(mission_policies(mission.to_dict())) + list(policies)
        )
        self.scorer = scorer
        self.models = models
        self.tools = _stand_ins(mission, loader)
        missing = [t.name for t in mission.graph.tools if t.name not in self.tools]
        if missing and not allow_real_tools:
            raise SparkError(
                f"{label}: no simulation stand-in for tool(s) {missing} "
                "(add simulation.tools overrides or allow real tools)"
            )
        # Input index -> its run, so the records keep the inputs' order however the
        # concurrent runs finish (the bootstrap resamples them in that order).
        self.runs: Dict[int, RunRecord] = {}

    def _models(self) -> Mapping[str, Any]:
        if self.models is None:
            return {}
        made = self.models() if callable(self.models) else self.models
        return dict(made)

    @property
    def records(self) -> List[RunRecord]:
        """The runs made, in input order."""
        return [self.runs[i] for i in sorted(self.runs)]

    async def run(self, index: int, inputs: Any) -> None:
        from spark_core.agents import replace_models

        observer = self.database.observer(
            self.mission.mission_id,
            self.graph_version,
            scorer=self.scorer,
            source="ab_test",
        )
        graph = self.loader.load_mission(
            self.mission,
            tool_overrides=self.tools,
            policy_set=self.policy,
            observers=[observer],
        )
        models = self._models()
        if models:
            replace_models(graph, lambda node_id, model: models.get(node_id, model))
        try:
            await graph.run(inputs)
        except SparkError:  # recorded by the observer as a failed run
            pass
        if observer.last_record is not None:
            self.runs[index] = observer.last_record

    def metrics(self) -> ArmMetrics:
        runs = self.records
        latencies = [r.duration_ms for r in runs]
        errors: List[str] = []
        for r in runs:
            if r.error and r.error not in errors and len(errors) < 5:
                errors.append(r.error)
        return ArmMetrics(
            version=self.label,
            runs=len(runs),
            successes=sum(r.ok for r in runs),
            success_rate=sum(r.ok for r in runs) / len(runs) if runs else 0.0,
            mean_latency_ms=sum(latencies) / len(runs) if runs else 0.0,
            p95_latency_ms=percentile(latencies, 95),
            mean_cost_usd=sum(r.cost_usd for r in runs) / len(runs) if runs else 0.0,
            mean_score=(
                sum(_score(r) for r in runs) / len(runs)
                if runs and self.scorer is not None
                else None
            ),
            errors=errors,
        )


def _score(record: RunRecord) -> float:
    return record.score if record.ok and record.score is not None else 0.0


async def run_ab_test(
    baseline: MissionSpec,
    candidate: MissionSpec,
    inputs: Sequence[Any],
    *,
    proposal_id: str = "candidate",
    config: ABTestConfig = ABTestConfig(),
    loader: Any = None,
    database: Optional[ExperienceDatabase] = None,
    scorer: Optional[Scorer] = None,
    models: ModelsArg = None,
    policies: Sequence[Mapping[str, Any]] = (),
    max_cost_per_run: Optional[float] = None,
) -> ABTestResult:
    """Run baseline and candidate on the same inputs and decide.

    Args:
        baseline: The current spec.
        candidate: The changed spec.
        inputs: Run inputs (replayed from the experience database, or given).
        proposal_id: The candidate's name in the result.
        config: Sample sizes, level, seed, concurrency.
        loader: A ``SpecLoader`` (default: one allowing ``spark_core`` only).
        database: Where A/B runs are recorded (``source="ab_test"``; default: in memory).
        scorer: ``scorer(inputs, output) -> float`` (higher is better).
        models: Stand-in models by agent node id (or a function returning such a mapping,
            called per run so each run gets fresh models).
        policies: Policy sets enforced besides the spec's own.
        max_cost_per_run: The candidate's measured mean cost must not exceed this.

    Returns:
        The result (a run that fails is counted, not raised).

    Raises:
        SparkError: A tool has no stand-in and ``config.allow_real_tools`` is false, or a
            spec does not load.
    """
    if loader is None:
        from spark_core.spec.loader import SpecLoader

        loader = SpecLoader()
    owned = database is None
    if database is None:
        database = ExperienceDatabase(":memory:")
        database.initialize_sync()
    items = list(inputs)[-config.max_samples :]
    store = database

    def arm(label: str, mission: MissionSpec) -> _Arm:
        return _Arm(
            label,
            mission,
            loader=loader,
            database=store,
            graph_version=f"{baseline.version}+ab-{label}",
            policies=policies,
            scorer=scorer,
            models=models,
            allow_real_tools=config.allow_real_tools,
        )

    base, cand = arm("baseline", baseline), arm(proposal_id, candidate)
    rng = random.Random(config.seed)
    order = [rng.random() < 0.5 for _ in items]
    gate = asyncio.Semaphore(max(1, config.concurrency))

    async def pair(index: int, item: Any, candidate_first: bool) -> None:
        async with gate:
            arms = (cand, base) if candidate_first else (base, cand)
            for arm in arms:
                await arm.run(index, item)

    try:
        if len(items) >= config.min_samples:
            await asyncio.gather(
                *(
                    pair(i, item, first)
                    for i, (item, first) in enumerate(zip(items, order))
                )
            )
    finally:
        if owned:
            database.close()
    return _decide(base, cand, len(items), config, max_cost_per_run, scorer is not None)


def _decide(
    base: _Arm,
    cand: _Arm,
    samples: int,
    config: ABTestConfig,
    max_cost: Optional[float],
    scored: bool,
) -> ABTestResult:
    result = ABTestResult(
        cand.label, samples, base.metrics(), cand.metrics(), alpha=config.alpha
    )
    if samples < config.min_samples:
        result.reason = (
            f"{samples} input(s), fewer than the {config.min_samples} required"
        )
        return result
    a, b = result.baseline, result.candidate
    alpha = config.alpha
    tests = result.tests
    for alternative in ("greater", "less"):
        tests.append(
            two_proportion_z_test(
                a.successes, a.runs, b.successes, b.runs, alternative=alternative
            )
        )
    lat_a = [r.duration_ms for r in base.records]
    lat_b = [r.duration_ms for r in cand.records]
    tests.append(mann_whitney_u(lat_a, lat_b, alternative="less", metric="latency_ms"))
    if scored:
        scores_a = [_score(r) for r in base.records]
        scores_b = [_score(r) for r in cand.records]
        for alternative in ("greater", "less"):
            tests.append(
                mann_whitney_u(
                    scores_a, scores_b, alternative=alternative, metric="score"
                )
            )
    diff, low, high = bootstrap_mean_diff(
        lat_a, lat_b, seed=config.seed, iterations=config.bootstrap_iterations
    )
    result.latency_diff_ms = {
        "diff": diff,
        "low": low,
        "high": high,
        "confidence": 0.95,
    }

    def significant(metric: str, alternative: str) -> bool:
        test = result.test(metric, alternative)
        return test is not None and test.significant(alpha)

    if max_cost is not None and b.mean_cost_usd > max_cost:
        result.decision = "baseline"
        result.reason = (
            f"candidate's mean cost ${b.mean_cost_usd:.4f} per run exceeds "
            f"the bound ${max_cost:.4f}"
        )
    elif significant("success_rate", "less"):
        result.decision, result.reason = "baseline", (
            f"success rate fell from {a.success_rate:.0%} to {b.success_rate:.0%}"
        )
    elif significant("score", "less"):
        result.decision, result.reason = "baseline", "score fell significantly"
    elif significant("success_rate", "greater"):
        result.decision, result.reason = "candidate", (
            f"success rate rose from {a.success_rate:.0%} to {b.success_rate:.0%}"
        )
    elif significant("score", "greater"):
        result.decision, result.reason = "candidate", (
            f"score rose from {a.mean_score or 0:.2f} to {b.mean_score or 0:.2f}"
        )
    elif significant("latency_ms", "less"):
        result.decision, result.reason = "candidate", (
            f"latency fell by {-diff:.1f} ms (95% CI {-high:.1f} to {-low:.1f})"
        )
    else:
        result.reason = f"no significant difference at alpha={alpha:g}"
    return result
