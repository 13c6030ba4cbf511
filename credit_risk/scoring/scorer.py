"""Scoring: PD, High/Low risk, credit score, rating and master-scale grade for applications,
from a published model.

Serving side: a version's pure-data scoring plan, never a pickle; no pandas or scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from credit_risk.scoring import bands as rating_bands
from credit_risk.scoring.plan import ARRAYS_FILE, BOOSTER_FILE, PLAN_FILE, PlanError, ScoringPlan
from credit_risk.scoring.reasons import ReasonExplainer
from credit_risk.spec.fields import with_cleaning


class VersionFiles(Protocol):
    """What `Scorer.load` reads of a model registry (credit_risk.registry's `Registry`)."""

    @property
    def trusted_keys(self) -> Sequence[Any]: ...
    def verify(self, version: str) -> dict[str, Any]: ...
    def read_file(self, version: str, name: str, manifest: dict[str, Any]) -> bytes: ...


@dataclass(frozen=True)
class ScoreScaling:
    """score = offset + factor * ln(odds_good), clipped; factor = pdo / ln 2."""

    base_score: float = 600.0
    base_odds: float = 30.0
    pdo: float = 40.0
    min_score: int = 300
    max_score: int = 900

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        return self.base_score - self.factor * math.log(self.base_odds)

    def __post_init__(self) -> None:
        numbers = (self.base_score, self.base_odds, self.pdo, self.min_score, self.max_score)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                   for v in numbers):
            raise PlanError(f"the score scaling {numbers} has values that are not finite numbers")
        if self.base_odds <= 0 or self.pdo <= 0 or self.min_score > self.max_score:
            raise PlanError("the score scaling needs base odds > 0, points to double the odds "
                            f"> 0 and min score <= max score, not {numbers}")

    def score(self, pd_: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(pd_, dtype=float), 1e-9, 1 - 1e-9)
        raw = self.offset + self.factor * np.log((1 - p) / p)
        return np.clip(np.rint(raw), self.min_score, self.max_score).astype(int)


def ratings(scores: np.ndarray) -> list[str]:
    """`credit_risk.scoring.bands.rating` of each credit score, at once (the bands as they
    are defined now)."""
    defined = rating_bands.BANDS
    names = np.array([b.name for b in defined], dtype=object)
    return names[np.searchsorted([b.low for b in defined[1:]], scores, side="right")].tolist()


def _threshold(value: Any) -> float:
    """The High/Low threshold of a manifest: a finite PD inside [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not (math.isfinite(value) and 0 <= value <= 1):
        raise PlanError(f"the model's High/Low threshold {value!r} is not a PD inside [0, 1]")
    return float(value)


class Scorer:
    """Everything needed to answer a scoring request for one model version."""

    def __init__(self, plan: ScoringPlan, manifest: Mapping[str, Any], n_reasons: int = 3):
        self.plan = plan
        self.manifest = manifest
        self.version: str = manifest["version"]
        self.threshold = _threshold(manifest.get("threshold"))
        try:
            self.scaling = ScoreScaling(**manifest["score_scaling"])
        except (KeyError, TypeError) as exc:
            raise PlanError(f"version {self.version}: no usable score scaling ({exc})") from exc
        # with the spec's cleaning rules: the API, the form and `predict` clean as training did
        self.fields: list[dict[str, Any]] = with_cleaning(manifest["inputs"], manifest["spec"])
        self.rules: list[dict[str, Any]] = manifest["spec"].get("rules", [])
        self.n_reasons = n_reasons
        spec = manifest["spec"]
        described = {**spec["columns"], **spec.get("derived", {})}
        self.explainer = ReasonExplainer(
            plan,
            labels={k: v["label"] for k, v in described.items() if v.get("label")},
            units={k: v.get("unit") for k, v in spec["columns"].items()},
        )

    @classmethod
    def load(cls, registry: VersionFiles, version: str) -> Scorer:
        """The Scorer of a registry version: every file verified, the plan read as pure data."""
        manifest = registry.verify(version)
        names = [n for n in (PLAN_FILE, ARRAYS_FILE, BOOSTER_FILE) if n in manifest["files"]]
        if PLAN_FILE not in names:
            raise PlanError(f"version {version} has no pure-data scoring plan ({PLAN_FILE}): "
                            "it was published by an older credit-risk that stored only a pickle, "
                            "which serving never loads; train and publish a new version")
        files = {n: registry.read_file(version, n, manifest) for n in names}
        return cls(ScoringPlan.from_files(files, signed=bool(registry.trusted_keys)), manifest)

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Score validated applications (dicts of field values)."""
        if not records:
            return []
        rows, warnings = self.plan.features.prepare(records)
        both = self.explainer.raw_and_contributions(rows) if self.n_reasons > 0 else None
        if both is not None:  # a batch: PDs and contributions from one pass over the trees
            raw, contributions = both
            reasons = self.explainer.explain(rows, records, self.n_reasons,
                                             contributions=contributions)
        else:
            raw, per_feature = self.plan.raw_with_contributions(rows, self.n_reasons > 0)
            reasons = self.explainer.explain(rows, records, self.n_reasons, per_feature)
        return self._results(self.plan.calibrate(raw), reasons, warnings)

    def score_columns(self, columns: Mapping[str, Sequence[Any]], n: int) -> dict[str, list[Any]]:
        """Score `n` validated applications given as columns: `score_records`' results as
        columns, the reasons and warnings as text ("; "-joined), for files."""
        rows, warned = self.plan.features.prepare_columns(columns, n)
        both = self.explainer.raw_and_contributions(rows) if self.n_reasons > 0 else None
        raw, contributions = both if both is not None else (
            self.plan.predict_raw(rows) if n else np.empty(0), None)
        pd_ = self.plan.calibrate(raw) if n else np.empty(0)
        scores = self.scaling.score(pd_)
        grades = self.plan.master_scale.grades(pd_)
        warnings = [""] * n
        for i, said in warned.items():
            warnings[i] = "; ".join(f"{w['field']} {w['message']}" for w in said)
        return {
            "probability_of_default": pd_.tolist(),
            "risk": np.where(pd_ >= self.threshold, "High", "Low").tolist(),
            "credit_score": scores.tolist(),
            "rating": ratings(scores),
            "grade": grades,
            "reasons": self.explainer.explain_texts(rows, columns, self.n_reasons,
                                                    contributions),
            "warnings": warnings,
            "model_version": [self.version] * n,
        }

    def _results(self, pd_: np.ndarray, reasons: list[list[dict[str, Any]]],
                 warnings: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        scores = self.scaling.score(pd_)
        pds, bands = pd_.tolist(), ratings(scores)
        grades = self.plan.master_scale.grades(pd_)
        version, threshold = self.version, self.threshold
        return [
            {
                "probability_of_default": p,
                "risk": "High" if p >= threshold else "Low",
                "credit_score": s,
                "rating": band,
                "grade": grade,
                "reasons": why,
                "model_version": version,
                "warnings": capped,
            }
            for p, s, band, grade, why, capped in zip(pds, scores.tolist(), bands, grades,
                                                      reasons, warnings, strict=True)
        ]
