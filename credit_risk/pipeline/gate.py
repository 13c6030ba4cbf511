"""The approval gate: may a newly trained model become the champion?"""

from __future__ import annotations

from credit_risk.config import Settings
from credit_risk.pipeline.run_reports import Champion, Fairness, GateLimits, Metrics
from credit_risk.spec.dataset import DatasetSpec


def gate_thresholds(settings: Settings, spec: DatasetSpec) -> GateLimits:
    """The settings' thresholds, overridden by the dataset spec's `gate` section."""
    g = spec.gate
    return GateLimits(
        min_roc_auc=g.min_roc_auc if g.min_roc_auc is not None else settings.gate.min_roc_auc,
        max_ece=g.max_ece if g.max_ece is not None else settings.gate.max_ece,
        min_approval_ratio=g.min_approval_ratio if g.min_approval_ratio is not None
        else settings.gate.min_approval_ratio,
        champion_margin=settings.gate.champion_margin,
    )


def rejection_reasons(metrics: Metrics, champion: Champion | None, fairness: Fairness,
                      limits: GateLimits) -> list[str]:
    """Why the model may not be promoted; empty when it may."""
    reasons = []
    auc, ece = metrics.roc_auc, metrics.ece
    if auc < limits.min_roc_auc:
        reasons.append(f"test ROC-AUC {auc:.4f} is below the minimum {limits.min_roc_auc:.4f}")
    if ece > limits.max_ece:
        reasons.append(f"test ECE {ece:.4f} is above the maximum {limits.max_ece:.4f}")
    if champion is not None and not champion.comparable:
        reasons.append(f"cannot compare with the champion {champion.version}: "
                       f"{champion.note} (promote by hand if intended)")
    elif champion is not None and auc < champion.roc_auc + limits.champion_margin:
        reasons.append(f"test ROC-AUC {auc:.4f} does not beat the champion {champion.version} "
                       f"({champion.roc_auc:.4f}) by {limits.champion_margin:+.4f} "
                       "on the same test set")
    for name, attr in fairness.attributes.items():
        if not attr.passed:
            reasons.append(f"approval-rate ratio across {name} groups {attr.ratio:.3f} is "
                           f"below {fairness.min_ratio:.2f}")
    return reasons
