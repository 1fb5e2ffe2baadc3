"""One tick's decision for one rollout, as a pure function of what was observed.

The controller (``controller.py``) gathers the observations (each gate's reading, the stage's
exposure counts, the dwell) and stores the verdict; this module only decides, so the
simulations in the tests run it directly on in-memory counts. The order is the runbook's:

1. **roll back** when a gate breached on ``breaches_to_rollback`` consecutive ticks (only
   windows with at least ``min_gate_sample`` count; comparative gates by the sequential
   test in ``stats``, at ``alpha`` divided among the comparative gates, Bonferroni);
2. **hold** on a sample ratio mismatch (the exposures cannot be trusted, nor any figure);
3. **hold, and alert**, on no data or a failed metric computation: never advance on it,
   never fail on it;
4. **advance** (or **complete**, after the last stage) when dwell, sample and every gate
   hold; otherwise hold, saying what is missing.

A gate's streak grows on a breach and resets on a pass; a tick where the gate could not
be judged (too small a window, no data, an error) leaves it as it was.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flags.gates import GateMetric, GateReading
from flags.rollouts.states import DecisionKind
from flags.rollouts.stats import comparative_test, srm_test

OPS: dict[str, str] = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}

# A stage's first ticks often have no traffic yet: no data holds from the first tick, but
# alerts only once the stage is this old.
NO_DATA_ALERT_AFTER_SECONDS = 120


class GateSpecError(ValueError):
    """A gate definition that cannot be used; the message names the gate and the field."""


@dataclass(frozen=True)
class GateSpec:
    """One gate of a rollout. Absolute: ``value <op> threshold`` must hold. Comparative:
    treatment's rate must not be above ``(1 + max_lift)`` times control's."""

    key: str  # "<position>:<metric>", the name its streak is kept under
    metric: str
    comparative: bool
    op: str = ""
    threshold: float = 0.0
    max_lift: float = 0.0

    @property
    def label(self) -> str:
        if self.comparative:
            bound = "control" if not self.max_lift else f"control x {1 + self.max_lift:g}"
            return f"{self.metric}: treatment <= {bound}"
        return f"{self.metric} {self.op} {self.threshold:g}"

    def as_json(self) -> dict[str, Any]:
        if self.comparative:
            return {"metric": self.metric, "max_lift": self.max_lift}
        return {"metric": self.metric, "op": self.op, "threshold": self.threshold}


def _number(value: Any, *, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GateSpecError(f"{where}: {name} must be a number.")
    return float(value)


def gates_parse(value: Any, *, metrics: Mapping[str, GateMetric]) -> list[GateSpec]:
    """The gate list as stored on a rollout (JSON), checked against the registered metrics:
    ``{"metric", "op", "threshold"}`` for an absolute metric, ``{"metric", "max_lift"?}``
    for a comparative one. GateSpecError names the first problem."""
    if not isinstance(value, list):
        raise GateSpecError("Gates must be a list.")
    specs: list[GateSpec] = []
    for position, item in enumerate(value):
        where = f"Gate {position + 1}"
        if not isinstance(item, dict):
            raise GateSpecError(f"{where}: must be an object with a metric.")
        name = item.get("metric")
        if not isinstance(name, str) or not name:
            raise GateSpecError(f"{where}: metric is required.")
        metric = metrics.get(name)
        if metric is None:
            known = ", ".join(sorted(metrics)) or "none registered"
            raise GateSpecError(f"{where}: unknown metric {name!r} (known: {known}).")
        where = f"Gate {position + 1} ({name})"
        key = f"{position}:{name}"
        if metric.comparative:
            extra = set(item) - {"metric", "max_lift"}
            if extra:
                raise GateSpecError(
                    f"{where}: a comparative metric takes only max_lift, not {', '.join(sorted(extra))}."
                )
            lift = _number(item.get("max_lift", 0.0), where=where, name="max_lift")
            if lift < 0:
                raise GateSpecError(f"{where}: max_lift must be 0 or more.")
            specs.append(GateSpec(key=key, metric=name, comparative=True, max_lift=lift))
        else:
            extra = set(item) - {"metric", "op", "threshold"}
            if extra:
                raise GateSpecError(
                    f"{where}: an absolute metric takes op and threshold, not {', '.join(sorted(extra))}."
                )
            op = item.get("op")
            if op not in OPS:
                raise GateSpecError(f"{where}: op must be one of {', '.join(OPS)}.")
            if "threshold" not in item:
                raise GateSpecError(f"{where}: threshold is required.")
            threshold = _number(item["threshold"], where=where, name="threshold")
            specs.append(GateSpec(key=key, metric=name, comparative=False, op=str(op), threshold=threshold))
    return specs


def stages_parse(value: Any) -> list[float]:
    """Stages: a non-empty list of percentages, each in (0, 100] with at most one decimal
    place (as a flag stores it), strictly increasing."""
    if not isinstance(value, list) or not value:
        raise GateSpecError("Stages must be a non-empty list of percentages, e.g. [5, 25, 100].")
    stages: list[float] = []
    for position, item in enumerate(value):
        percent = _number(item, where=f"Stage {position + 1}", name="the percentage")
        if not 0 < percent <= 100:
            raise GateSpecError(f"Stage {position + 1}: {percent:g} is not a percentage in (0, 100].")
        if round(percent, 1) != percent:  # a flag's percentage has one decimal place
            raise GateSpecError(f"Stage {position + 1}: {percent:g} has more than one decimal place.")
        if stages and percent <= stages[-1]:
            raise GateSpecError(f"Stage {position + 1}: {percent:g} must be above the stage before ({stages[-1]:g}).")
        stages.append(percent)
    return stages


class GateStatus:
    PASS = "pass"  # noqa: S105 (a status, not a password)
    BREACH = "breach"
    LOW_SAMPLE = "low_sample"
    NO_DATA = "no_data"
    ERROR = "error"


@dataclass(frozen=True)
class GateJudgement:
    status: str
    sample: int
    text: str
    figures: dict[str, Any]


def gate_judge(
    spec: GateSpec, reading: GateReading | BaseException, *, alpha: float, min_gate_sample: int, percent: float
) -> GateJudgement:
    """One gate on one tick. ``alpha`` is this gate's share of the rollout's alpha."""
    if isinstance(reading, BaseException):
        text = f"{type(reading).__name__}: {reading}"[:300]
        return GateJudgement(GateStatus.ERROR, 0, f"{spec.label}: failed ({text})", {"error": text})
    base: dict[str, Any] = {"detail": reading.detail} if reading.detail else {}
    if spec.comparative:
        t, c = reading.treatment, reading.control
        if t is None or t.n <= 0:
            return GateJudgement(GateStatus.NO_DATA, 0, f"{spec.label}: no treatment data", base)
        counts = {"treatment_n": t.n, "treatment_events": t.events}
        if c is not None:
            counts |= {"control_n": c.n, "control_events": c.events}
        if t.events < 0 or t.events > t.n or (c is not None and (c.events < 0 or c.events > c.n)):
            return GateJudgement(GateStatus.ERROR, 0, f"{spec.label}: impossible counts", base | counts)
        if c is None or c.n <= 0:
            if percent >= 100:
                # The last stage has no control cohort left: nothing to compare with.
                status = GateStatus.PASS if t.n >= min_gate_sample else GateStatus.LOW_SAMPLE
                return GateJudgement(status, t.n, f"{spec.label}: no control at 100 %", base | counts)
            return GateJudgement(GateStatus.NO_DATA, t.n, f"{spec.label}: no control data", base | counts)
        sample = min(t.n, c.n)
        if sample < min_gate_sample:
            return GateJudgement(
                GateStatus.LOW_SAMPLE, t.n, f"{spec.label}: n={sample} < {min_gate_sample}", base | counts
            )
        result = comparative_test(treatment=t, control=c, alpha=alpha, max_lift=spec.max_lift)
        status = GateStatus.BREACH if result.breach else GateStatus.PASS
        text = (
            f"{spec.label}: treatment {result.rate_treatment:.4%} (n={t.n}) vs control "
            f"{result.rate_control:.4%} (n={c.n}), log LR {result.log_lambda:.2f} "
            f"{'>=' if result.breach else '<'} {result.log_threshold:.2f}"
        )
        return GateJudgement(status, t.n, text, base | counts | result.figures() | {"alpha": alpha})
    value, sample = reading.value, int(reading.sample or 0)
    figures = base | {"value": value, "sample": sample, "op": spec.op, "threshold": spec.threshold}
    if value is None or sample <= 0:
        return GateJudgement(GateStatus.NO_DATA, 0, f"{spec.label}: no data", figures)
    if not math.isfinite(value):
        return GateJudgement(GateStatus.ERROR, sample, f"{spec.label}: value {value!r}", figures | {"value": None})
    if sample < min_gate_sample:
        return GateJudgement(GateStatus.LOW_SAMPLE, sample, f"{spec.label}: n={sample} < {min_gate_sample}", figures)
    holds = {
        "<": value < spec.threshold,
        "<=": value <= spec.threshold,
        ">": value > spec.threshold,
        ">=": value >= spec.threshold,
    }[spec.op]
    status = GateStatus.PASS if holds else GateStatus.BREACH
    return GateJudgement(status, sample, f"{spec.label}: {value:g} (n={sample})", figures)


@dataclass(frozen=True)
class Policy:
    """What a rollout asks of each stage."""

    stages: Sequence[float]
    stage_index: int
    gates: Sequence[GateSpec]
    min_dwell_seconds: float = 600
    min_sample: int = 1000
    min_gate_sample: int = 100
    breaches_to_rollback: int = 2
    alpha: float = 0.05

    @property
    def percent(self) -> float:
        return float(self.stages[self.stage_index])

    @property
    def last_stage(self) -> bool:
        return self.stage_index >= len(self.stages) - 1

    @property
    def alpha_per_gate(self) -> float:
        comparative = sum(1 for g in self.gates if g.comparative)
        return self.alpha / max(comparative, 1)


@dataclass(frozen=True)
class Observed:
    """One tick's observations: each gate's reading (or the exception computing it raised),
    by gate key; the stage's units per cohort (None: not measured); the stage's age."""

    readings: Mapping[str, GateReading | BaseException]
    dwell_seconds: float
    exposure: tuple[int, int] | None = None


@dataclass(frozen=True)
class Verdict:
    decision: str
    reason: str
    figures: dict[str, Any]
    streaks: dict[str, int]
    alert: str = ""  # "", "srm", "gate_error", "no_data": a condition to tell someone about
    rollback_gate: str = ""


def tick_decide(*, policy: Policy, observed: Observed, streaks: Mapping[str, int]) -> Verdict:
    """The decision for one running rollout on one tick (see the module's docstring)."""
    alpha = policy.alpha_per_gate
    judged: dict[str, GateJudgement] = {}
    new_streaks: dict[str, int] = {}
    for spec in policy.gates:
        reading = observed.readings.get(spec.key)
        if reading is None:
            reading = GateReading(value=None)
        judgement = gate_judge(
            spec, reading, alpha=alpha, min_gate_sample=policy.min_gate_sample, percent=policy.percent
        )
        judged[spec.key] = judgement
        previous = int(streaks.get(spec.key, 0))
        if judgement.status == GateStatus.BREACH:
            new_streaks[spec.key] = previous + 1
        elif judgement.status == GateStatus.PASS:
            new_streaks[spec.key] = 0
        else:
            new_streaks[spec.key] = previous
    figures: dict[str, Any] = {
        "stage": policy.stage_index,
        "percent": policy.percent,
        "dwell_seconds": round(observed.dwell_seconds, 1),
        "min_dwell_seconds": policy.min_dwell_seconds,
        "min_sample": policy.min_sample,
        "alpha_per_gate": alpha,
        "gates": {
            key: {"status": j.status, "streak": new_streaks[key], "sample": j.sample, **j.figures}
            for key, j in judged.items()
        },
    }

    def verdict(decision: str, reason: str, **kwargs: Any) -> Verdict:
        return Verdict(decision=decision, reason=reason, figures=figures, streaks=new_streaks, **kwargs)

    # 1. Roll back on a breach that lasted.
    for spec in policy.gates:
        if new_streaks[spec.key] >= policy.breaches_to_rollback:
            return verdict(
                DecisionKind.ROLLBACK,
                f"{judged[spec.key].text}; breached on {new_streaks[spec.key]} consecutive ticks",
                rollback_gate=spec.key,
            )

    # 2. Hold on a sample ratio mismatch.
    if observed.exposure is not None:
        srm = srm_test(treatment_units=observed.exposure[0], control_units=observed.exposure[1], percent=policy.percent)
        figures["srm"] = srm.figures() | {"tested": srm.tested, "mismatch": srm.mismatch}
        if srm.mismatch:
            return verdict(
                DecisionKind.HOLD,
                f"sample ratio mismatch: treatment has {srm.observed_share:.2%} of "
                f"{srm.treatment_units + srm.control_units} units, configured {srm.expected_share:.2%} "
                f"(chi2 {srm.chi2:.1f}, p {srm.p:.2g})",
                alert="srm",
            )

    # 3. Hold (and alert) on a failed computation or no data.
    failed = [j.text for j in judged.values() if j.status == GateStatus.ERROR]
    if failed:
        return verdict(DecisionKind.HOLD, "metric failed: " + "; ".join(failed), alert="gate_error")
    missing = [j.text for j in judged.values() if j.status == GateStatus.NO_DATA]
    if not policy.gates and (observed.exposure is None or sum(observed.exposure) == 0):
        missing.append("no gates and no exposures")
    if missing:
        alert = "no_data" if observed.dwell_seconds >= NO_DATA_ALERT_AFTER_SECONDS else ""
        return verdict(DecisionKind.HOLD, "no data: " + "; ".join(missing), alert=alert)

    # 4. Advance only on dwell, sample and every gate.
    samples = [j.sample for j in judged.values()]
    if not samples and observed.exposure is not None:
        samples = [observed.exposure[0]]
    sample = min(samples) if samples else 0
    figures["sample"] = sample
    waiting: list[str] = []
    if observed.dwell_seconds < policy.min_dwell_seconds:
        waiting.append(f"dwell {observed.dwell_seconds:.0f} s < {policy.min_dwell_seconds:g} s")
    if sample < policy.min_sample:
        waiting.append(f"sample {sample} < {policy.min_sample}")
    waiting.extend(j.text for j in judged.values() if j.status != GateStatus.PASS)
    if waiting:
        return verdict(DecisionKind.HOLD, "waiting: " + "; ".join(waiting))
    passed = "; ".join(j.text for j in judged.values()) or f"{sample} treatment units"
    if policy.last_stage:
        return verdict(DecisionKind.COMPLETE, f"last stage ({policy.percent:g} %) passed: {passed}")
    nxt = policy.stages[policy.stage_index + 1]
    return verdict(DecisionKind.ADVANCE, f"stage {policy.percent:g} % passed, to {nxt:g} %: {passed}")
