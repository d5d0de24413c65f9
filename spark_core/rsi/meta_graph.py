"""``RSIMetaGraph``: the improvement loop as a spark_core graph.

::

    analyze -> hypothesize -> validate -> test --(deploy=True)--> deploy

Each node takes and returns JSON data (the baseline spec travels with it), so the loop runs
like any graph: with telemetry, a durable state backend, ``run_sync``, and approvals. With
``require_approval=True`` a REQUIRE_APPROVAL policy on ``node://deploy`` pauses the run
before anything is deployed; ``summary.approval_request_id`` names the request, and after
``rsi.graph.approvals.resolve(...)`` the call ``rsi.resume(summary.run_id)`` deploys.

The seed's example runs as written::

    experience_db = ExperienceDatabase("experience.db")
    await experience_db.initialize()
    rsi = RSIMetaGraph(config=RSIMetaGraphConfig(graph_id="customer_service_agent",
                       graph_version="1.0", analysis_window_hours=24, max_hypotheses=3),
                       experience_db=experience_db, model=OpenAIModel(model_id="gpt-4o"))
    summary = await rsi.run(target_graph=my_graph)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Union

from spark_core.nodes import ExecutionContext, Node
from spark_core.errors import NodeExecutionError, SparkError
from spark_core.graphs import Graph
from spark_core.rsi.abtest import ABTestConfig, ABTestResult, ArmMetrics, run_ab_test
from spark_core.rsi.analysis import Analysis, analyze
from spark_core.rsi.deploy import (
    DeploymentRecord,
    SpecRepository,
    bump_version,
    normalize_version,
)
from spark_core.rsi.errors import DeploymentError, RSIError
from spark_core.rsi.experience import ExperienceDatabase, Scorer
from spark_core.rsi.hypothesize import HypothesisRules, hypothesize
from spark_core.rsi.proposals import Proposal
from spark_core.rsi.summary import ProposalOutcome, RSISummary
from spark_core.rsi.validate import SafetyPolicy, validate_proposal
from spark_core.spec import GraphSpec, MissionSpec, load_spec
from spark_core.utils import arun

__all__ = ["RSIMetaGraphConfig", "RSIMetaGraph"]

TargetLike = Union[MissionSpec, GraphSpec, Any, str, "os.PathLike[str]", None]


@dataclass
class RSIMetaGraphConfig:
    """What to improve and how far RSI may go.

    Attributes:
        graph_id: The graph (mission) id its runs are recorded under.
        graph_version: The version whose runs are analyzed (``"1.0"`` reads as ``1.0.0``
            for the spec; runs are looked up under the text given).
        analysis_window_hours: Analyze runs started this recently (None: all).
        max_hypotheses: Most proposals per run.
        deploy: Deploy the winner (else the summary only names it).
        require_approval: Pause before deploying until a human approves.
        repository: Folder of the :class:`SpecRepository` (needed to deploy).
        version_bump: ``"minor"`` (default), ``"major"`` or ``"patch"``.
        safety: What proposals may change.
        ab_test: Sample sizes, significance, seed of the A/B tests.
        rules: Knobs of the built-in hypothesis rules.
        error_rate_threshold: See :func:`~spark_core.rsi.analysis.analyze`.
        score_threshold: See :func:`~spark_core.rsi.analysis.analyze`.
        max_reasks: Times a bad model answer is sent back.
    """

    graph_id: str
    graph_version: str = "1.0.0"
    analysis_window_hours: Optional[float] = 24.0
    max_hypotheses: int = 3
    deploy: bool = False
    require_approval: bool = False
    repository: Optional[str] = None
    version_bump: str = "minor"
    safety: SafetyPolicy = field(default_factory=SafetyPolicy)
    ab_test: ABTestConfig = field(default_factory=ABTestConfig)
    rules: HypothesisRules = field(default_factory=HypothesisRules)
    error_rate_threshold: float = 0.05
    score_threshold: float = 0.8
    max_reasks: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.graph_id, str) or not self.graph_id:
            raise RSIError("RSIMetaGraphConfig.graph_id must be a non-empty string")
        if isinstance(self.max_hypotheses, bool) or not isinstance(
            self.max_hypotheses, int
        ):
            raise RSIError("RSIMetaGraphConfig.max_hypotheses must be an int")
        if self.max_hypotheses < 0:
            raise RSIError("RSIMetaGraphConfig.max_hypotheses must be >= 0")
        if (
            self.analysis_window_hours is not None
            and not self.analysis_window_hours > 0
        ):
            raise RSIError("RSIMetaGraphConfig.analysis_window_hours must be > 0")
        if self.deploy and not self.repository:
            raise RSIError("RSIMetaGraphConfig.deploy needs a repository folder")


class _Step(Node):
    """A node of the meta graph: JSON payload in, the payload with its results out."""

    def __init__(self, rsi: RSIMetaGraph, name: str) -> None:
        super().__init__(name=name)
        self.rsi = rsi


class AnalyzeStep(_Step):
    """Reads the window's runs and computes findings."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Analyze the window.

        Args:
            context: Its input is ``{"baseline": mission dict, "inputs": [...] | None}``.

        Returns:
            The payload with ``analysis`` and ``replay_inputs``.
        """
        payload = dict(context.inputs.content)
        cfg = self.rsi.config
        runs = self.rsi.experience_db.query_runs(
            cfg.graph_id,
            cfg.graph_version,
            window_hours=cfg.analysis_window_hours,
            sources=["observer", "telemetry"],
        )
        result = analyze(
            runs,
            error_rate_threshold=cfg.error_rate_threshold,
            score_threshold=cfg.score_threshold,
        )
        replay = payload.get("inputs")
        if replay is None:
            replay = [r.inputs for r in runs if r.inputs is not None]
        return {**payload, "analysis": result.to_dict(), "replay_inputs": replay}


class HypothesizeStep(_Step):
    """Proposes changes from rules and the model."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Propose.

        Args:
            context: The analyze step's payload.

        Returns:
            The payload with ``proposals`` and ``notes``.
        """
        payload = dict(context.inputs.content)
        cfg = self.rsi.config
        found = await hypothesize(
            Analysis.from_dict(payload["analysis"]),
            MissionSpec.from_dict(payload["baseline"]),
            max_hypotheses=cfg.max_hypotheses,
            model=self.rsi.model,
            rules=cfg.rules,
            max_reasks=cfg.max_reasks,
        )
        return {
            **payload,
            "proposals": [p.to_dict() for p in found.proposals],
            "notes": found.notes,
        }


class ValidateStep(_Step):
    """Applies each proposal to a copy of the spec and checks it."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Validate every proposal.

        Args:
            context: The hypothesize step's payload.

        Returns:
            The payload with ``verdicts`` and the accepted ``candidates`` (spec dicts).
        """
        payload = dict(context.inputs.content)
        baseline = MissionSpec.from_dict(payload["baseline"])
        analysis = Analysis.from_dict(payload["analysis"])
        verdicts, candidates = [], {}
        for data in payload["proposals"]:
            verdict = validate_proposal(
                Proposal.from_dict(data),
                baseline,
                self.rsi.config.safety,
                analysis=analysis,
            )
            verdicts.append(verdict.to_dict())
            if verdict.accepted and verdict.candidate is not None:
                candidates[data["id"]] = verdict.candidate.to_dict()
        return {**payload, "verdicts": verdicts, "candidates": candidates}


def _rank(test: ABTestResult) -> Any:
    a, b = test.baseline, test.candidate
    score = (b.mean_score or 0.0) - (a.mean_score or 0.0)
    return (
        b.success_rate - a.success_rate,
        score,
        a.mean_latency_ms - b.mean_latency_ms,
    )


class TestStep(_Step):
    """A/B tests each accepted candidate against the baseline and picks the winner."""

    __test__ = False  # not a pytest class, whatever its name

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Test the candidates.

        The significance level is divided by the number of candidates (Bonferroni), so
        testing more candidates does not make a false win more likely.

        Args:
            context: The validate step's payload.

        Returns:
            The payload with ``ab_tests``, ``winner`` and ``deploy`` (whether to deploy).
        """
        payload = dict(context.inputs.content)
        rsi, cfg = self.rsi, self.rsi.config
        baseline = MissionSpec.from_dict(payload["baseline"])
        candidates = payload["candidates"]
        config = cfg.ab_test
        if len(candidates) > 1:
            config = replace(config, alpha=config.alpha / len(candidates))
        results = []
        for proposal_id, spec in candidates.items():
            try:
                result = await run_ab_test(
                    baseline,
                    MissionSpec.from_dict(spec),
                    payload["replay_inputs"],
                    proposal_id=proposal_id,
                    config=config,
                    loader=cfg.safety.loader(),
                    database=rsi.experience_db,
                    scorer=rsi.scorer,
                    models=rsi.models,
                    policies=cfg.safety.policies,
                    max_cost_per_run=cfg.safety.max_cost_per_run,
                )
            except SparkError as exc:  # e.g. the baseline does not load: no decision
                result = ABTestResult(
                    proposal_id,
                    0,
                    ArmMetrics("baseline"),
                    ArmMetrics(proposal_id),
                    alpha=config.alpha,
                    reason=f"the A/B test could not run: {exc}",
                )
            results.append(result)
        winners = sorted((r for r in results if r.won), key=_rank, reverse=True)
        winner = winners[0].proposal_id if winners else None
        return {
            **payload,
            "ab_tests": [r.to_dict() for r in results],
            "winner": winner,
            "deploy": bool(winner and cfg.deploy),
        }


class DeployStep(_Step):
    """Writes the winner as the next version (and registers it)."""

    async def process(self, context: ExecutionContext) -> Dict[str, Any]:
        """Deploy the winner.

        Args:
            context: The test step's payload.

        Returns:
            The payload with ``deployment`` (a deploy record dict).
        """
        payload = dict(context.inputs.content)
        rsi, cfg = self.rsi, self.rsi.config
        repo = rsi.repository()
        baseline = MissionSpec.from_dict(payload["baseline"])
        repo.ensure_baseline(baseline)
        current = repo.current_version(baseline.mission_id) or baseline.version
        if repo.load(baseline.mission_id, current).to_dict() != baseline.to_dict():
            # Deploying a change of a stale spec would silently undo what is current.
            raise DeploymentError(
                f"the analyzed spec ({baseline.version}) is not the repository's current "
                f"version {current} of {baseline.mission_id!r}: improve the current one "
                "(run with target_graph=None)"
            )
        data = dict(payload["candidates"][payload["winner"]])
        data["version"] = bump_version(current, cfg.version_bump)
        record = repo.deploy(
            MissionSpec.from_dict(data),
            proposal_id=payload["winner"],
            registry=rsi.registry,
        )
        return {**payload, "deployment": record.to_dict()}


class RSIMetaGraph:
    """Recursive self-improvement of one graph, run as a spark_core graph.

    Args:
        config: What to improve and the limits.
        experience_db: Where the graph's runs are recorded (and A/B runs go).
        model: Optional model asked for proposals (any spark_core model; None: rules only).
        scorer: Optional ``scorer(inputs, output) -> float`` for A/B tests.
        models: Stand-in models for agent nodes in A/B runs (node id -> model, or a
            function returning such a mapping per run).
        registry: Optional flow registry updated on deploy and rollback (an object with
            ``update_flow``: ``LocalSpine``, ``AISpine``).
        state_backend: State backend of the meta graph (checkpoints, resume).
        telemetry: Telemetry of the meta graph (as ``Graph(telemetry=...)``).
        policy_set: Extra governance policies of the meta graph.
    """

    def __init__(
        self,
        config: RSIMetaGraphConfig,
        experience_db: ExperienceDatabase,
        model: Any = None,
        *,
        scorer: Optional[Scorer] = None,
        models: Any = None,
        registry: Any = None,
        state_backend: Any = None,
        telemetry: Any = None,
        policy_set: Any = None,
    ) -> None:
        if not isinstance(config, RSIMetaGraphConfig):
            raise RSIError(
                f"config must be an RSIMetaGraphConfig, got {type(config).__name__}"
            )
        if not isinstance(experience_db, ExperienceDatabase):
            raise RSIError(
                f"experience_db must be an ExperienceDatabase, got {type(experience_db).__name__}"
            )
        self.config = config
        self.experience_db = experience_db
        self.model = model
        self.scorer = scorer
        self.models = models
        self.registry = registry
        start = AnalyzeStep(self, "analyze")
        hypothesize_ = HypothesizeStep(self, "hypothesize")
        validate = ValidateStep(self, "validate")
        test = TestStep(self, "test")
        start >> hypothesize_
        hypothesize_ >> validate
        validate >> test
        test.on(deploy=True) >> DeployStep(self, "deploy")
        self.graph = Graph(
            start,
            state_backend=state_backend,
            telemetry=telemetry,
            policy_set=_policies(config, policy_set),
            graph_id=f"rsi-{config.graph_id}",
        )

    def __repr__(self) -> str:
        return f"RSIMetaGraph(graph_id={self.config.graph_id!r})"

    def repository(self) -> SpecRepository:
        """Return the spec repository deploys go to.

        Returns:
            The repository.

        Raises:
            RSIError: The config names no repository folder.
        """
        if not self.config.repository:
            raise RSIError(
                "no repository folder configured (RSIMetaGraphConfig.repository)"
            )
        return SpecRepository(self.config.repository)

    def baseline(self, target: TargetLike = None) -> MissionSpec:
        """Turn what ``run`` was given into the mission spec to improve.

        Args:
            target: A ``MissionSpec``, a ``GraphSpec``, a live ``Graph`` (exported), the path
                of a spec file, or None (the repository's current version).

        Returns:
            The mission (a graph gets ``graph_id`` and the normalized ``graph_version``).

        Raises:
            RSIError: The target cannot be turned into a spec.
        """
        cfg = self.config
        try:
            if target is None:
                return self.repository().load(cfg.graph_id)
            if isinstance(target, (str, os.PathLike)):
                target = load_spec(target)
            if isinstance(target, Graph):
                from spark_core.spec.loader import export_graph

                target = export_graph(target)
        except RSIError:
            raise
        except SparkError as exc:  # a spec error, or a node a spec cannot describe
            raise RSIError(
                f"cannot describe the target graph as a spec: {exc}"
            ) from None
        if isinstance(target, MissionSpec):
            return target
        if isinstance(target, GraphSpec):
            return MissionSpec(
                mission_id=cfg.graph_id,
                version=normalize_version(cfg.graph_version),
                graph=target,
            )
        raise RSIError(
            "target_graph must be a Graph, GraphSpec, MissionSpec or spec file path, "
            f"got {type(target).__name__}"
        )

    async def run(
        self,
        target_graph: TargetLike = None,
        *,
        inputs: Optional[Sequence[Any]] = None,
    ) -> RSISummary:
        """Run analyze -> hypothesize -> validate -> test (-> deploy) once.

        Args:
            target_graph: What to improve (see :meth:`baseline`).
            inputs: A/B test inputs (default: the inputs of the analyzed runs).

        Returns:
            The summary (also stored in the experience database).
        """
        from spark_core.governance import ApprovalPendingError

        mission = self.baseline(target_graph)
        payload = {
            "baseline": mission.to_dict(),
            "inputs": list(inputs) if inputs is not None else None,
        }
        try:
            result = await self.graph.run(payload)
        except ApprovalPendingError as exc:
            return await self._store(self._summary(exc.run_id, None, exc.request_id))
        except NodeExecutionError as exc:
            raise _unwrapped(exc) from None
        return await self._store(self._summary(result.run_id, result.outputs, None))

    def run_sync(self, target_graph: TargetLike = None, **kwargs: Any) -> RSISummary:
        """Synchronous :meth:`run` (works in notebooks too).

        Args:
            target_graph: What to improve.
            **kwargs: As for :meth:`run`.

        Returns:
            The summary.
        """
        return arun(self.run(target_graph, **kwargs))

    async def resume(self, run_id: str) -> RSISummary:
        """Continue a run paused for approval: deploy when it was approved.

        Args:
            run_id: ``summary.run_id``.

        Returns:
            The summary: ``deployed``, still ``awaiting_approval``, or ``rejected`` (the
            reviewer said no; nothing is deployed).
        """
        from spark_core.governance import ApprovalPendingError, PolicyViolationError

        try:
            result = await self.graph.resume(run_id)
        except ApprovalPendingError as exc:
            return self._summary(run_id, None, exc.request_id)
        except PolicyViolationError as exc:
            summary = self._summary(run_id, None, None)
            summary.status = "rejected"
            summary.notes.append(f"deploy not approved: {exc}")
            return await self._store(summary)
        except NodeExecutionError as exc:
            raise _unwrapped(exc) from None
        return await self._store(self._summary(run_id, result.outputs, None))

    def rollback(self, mission_id: Optional[str] = None) -> DeploymentRecord:
        """Make the previous version current again (and re-register it).

        Args:
            mission_id: The mission (default: ``config.graph_id``).

        Returns:
            The rollback record.
        """
        return self.repository().rollback(
            mission_id or self.config.graph_id, registry=self.registry
        )

    async def _store(self, summary: RSISummary) -> RSISummary:
        await self.experience_db.add_rsi_run(summary.graph_id, summary.to_dict())
        return summary

    def _summary(
        self,
        run_id: Optional[str],
        outputs: Optional[Dict[str, Any]],
        approval: Optional[str],
    ) -> RSISummary:
        if (
            outputs is None
        ):  # paused before deploy: the test step's output is the payload
            payload = self.graph.nodes["test"].state.context_snapshot or {}
        else:
            payload = outputs.get("deploy") or outputs.get("test") or {}
        return summarize(payload, run_id, approval)


def summarize(
    payload: Dict[str, Any], run_id: Optional[str], approval: Optional[str]
) -> RSISummary:
    """Build the summary from the meta graph's last payload.

    Args:
        payload: The test (or deploy) step's output.
        run_id: The meta-graph run.
        approval: A pending approval request id.

    Returns:
        The summary.
    """
    baseline = payload.get("baseline") or {}
    analysis = Analysis.from_dict(payload["analysis"])
    tests = [ABTestResult.from_dict(t) for t in payload.get("ab_tests", [])]
    by_id = {t.proposal_id: t for t in tests}
    deployment = payload.get("deployment")
    winner = payload.get("winner")
    outcomes = []
    for verdict in payload.get("verdicts", []):
        proposal = Proposal.from_dict(verdict["proposal"])
        test = by_id.get(proposal.id)
        if not verdict["accepted"]:
            state, reasons = "refused", list(verdict["reasons"])
        elif test is None:
            state, reasons = "inconclusive", ["not tested"]
        else:
            state = {"candidate": "won", "baseline": "lost"}.get(
                test.decision, "inconclusive"
            )
            reasons = [test.reason]
            if deployment and proposal.id == winner:
                state = "deployed"
        outcomes.append(
            ProposalOutcome(
                proposal, state, reasons, verdict.get("estimated_cost_per_run")
            )
        )
    if deployment:
        status = "deployed"
    elif approval:
        status = "awaiting_approval"
    elif winner:
        status = "winner_not_deployed"
    elif not analysis.findings:
        status = "no_findings"
    elif not outcomes:
        status = "no_proposals"
    elif not payload.get("candidates"):
        status = "no_safe_proposals"
    else:
        status = "no_winner"
    record = DeploymentRecord.from_dict(deployment) if deployment else None
    before = str(baseline.get("version", ""))
    return RSISummary(
        graph_id=str(baseline.get("mission_id", "")),
        status=status,
        version_before=before,
        version_after=record.version if record is not None else before,
        run_id=run_id,
        runs_analyzed=analysis.runs,
        success_rate=analysis.success_rate,
        findings=analysis.findings,
        proposals=outcomes,
        ab_tests=tests,
        winner=winner,
        deployment=record,
        approval_request_id=approval,
        notes=list(payload.get("notes", [])),
    )


def _unwrapped(error: NodeExecutionError) -> SparkError:
    """An RSI error a step raised, as itself (with its run id); other failures as they are."""
    cause = error.cause
    if isinstance(cause, RSIError):
        cause.run_id = error.run_id
        return cause
    return error


def _policies(config: RSIMetaGraphConfig, extra: Any) -> Any:
    from spark_core.governance import PolicySet

    rules: List[Any] = list(extra.rules) if extra is not None else []
    if config.require_approval:
        rules.append(
            {
                "name": "rsi-approve-deploy",
                "effect": "require_approval",
                "actions": ["node:execute"],
                "resources": ["node://deploy"],
                "description": "a human approves every RSI deploy",
            }
        )
    if not rules and extra is None:
        return None
    name = extra.name if extra is not None else "rsi"
    default = extra.default_effect if extra is not None else "allow"
    return PolicySet(name, rules, default_effect=default)
