"""A model version as people read it (`credit-risk models show`): what it is, how it scored,
what it takes. Plain text tables; `--json` prints the manifest instead."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from credit_risk.tables import label_of, text_table

METRICS = {"n": "Rows", "roc_auc": "ROC AUC", "gini": "Gini", "ks": "KS", "pr_auc": "PR AUC",
           "brier": "Brier score", "ece": "Calibration error (ECE)", "threshold": "Threshold",
           "precision": "Precision", "recall": "Recall", "f1": "F1",
           "default_rate": "Default rate", "flagged_rate": "Flagged High risk",
           "ece_uncalibrated": "ECE before calibration",
           "brier_uncalibrated": "Brier before calibration"}
COMPARED = ("roc_auc", "gini", "ks", "brier", "ece")


def pairs(rows: Sequence[tuple[str, Any]]) -> str:
    """Label and value, one per line, the values aligned (rows with no value left out)."""
    shown = [(k, _cell(v)) for k, v in rows if v not in (None, "", [], {})]
    width = max((len(k) for k, _ in shown), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in shown)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def manifest_text(m: Mapping[str, Any], aliases: Sequence[str] = ()) -> str:
    """The whole of `models show`: a summary, the test-set metrics, the candidates compared,
    fairness, and the inputs with their labels and constraints."""
    sections = [pairs(_summary(m, aliases))]
    metrics = m.get("metrics")
    if isinstance(metrics, Mapping) and metrics:
        rows = [{"metric": METRICS.get(k, label_of(k)), "value": _cell(v)}
                for k, v in metrics.items() if isinstance(v, int | float)]
        sections.append("Test set\n" + text_table(rows, ["metric", "value"]))
    comparison = m.get("comparison")
    if isinstance(comparison, list) and comparison:
        sections.append("Candidates, on the same test set\n" + _comparison(comparison))
    fairness = m.get("fairness")
    if isinstance(fairness, Mapping) and fairness.get("attributes"):
        sections.append(_fairness(fairness))
    inputs = m.get("inputs")
    if isinstance(inputs, list) and inputs:
        sections.append("Inputs\n" + text_table([_input(f) for f in inputs if isinstance(
            f, Mapping)], ["field", "label", "type", "accepts", "unit", "default"]))
    return "\n\n".join(sections)


def _summary(m: Mapping[str, Any], aliases: Sequence[str]) -> list[tuple[str, Any]]:
    policy = m.get("threshold_policy")
    threshold = m.get("threshold")
    if isinstance(policy, Mapping) and policy.get("policy") and threshold is not None:
        threshold = f"{_cell(threshold)} ({policy['policy']})"
    split = m.get("split_rule")
    split_text = (f"by {split.get('key')}, test size {split.get('test_size')}, seed "
                  f"{split.get('seed')}") if isinstance(split, Mapping) else None
    validation = m.get("validation")
    signature = m.get("signature")
    signed = (f"{signature.get('algorithm')}, key {signature.get('key_id')}"
              if isinstance(signature, Mapping) else "not signed")
    status = str(m.get("status") or "")
    if aliases:
        status += f" ({', '.join(aliases)})"
    reasons = m.get("rejection_reasons")
    return [
        ("Version", m.get("version")), ("Dataset", m.get("dataset")), ("Model", m.get("model")),
        ("Status", status),
        ("Not promoted because", "; ".join(map(str, reasons)) if reasons else None),
        ("Created", m.get("created_at")), ("Run", m.get("run")),
        ("Threshold (High risk)", threshold),
        ("Split", split_text),
        ("Validation", validation.get("summary") if isinstance(validation, Mapping) else None),
        ("Signature", signed), ("Code version", m.get("code_version")),
        ("Copy of", m.get("copy_of")),
    ]


def _comparison(rows: list[Any]) -> str:
    table = []
    for r in rows:
        if not isinstance(r, Mapping):
            continue
        test = r.get("test")
        test = test if isinstance(test, Mapping) else {}
        table.append({"model": r.get("model"), "CV ROC AUC": r.get("cv_roc_auc"),
                      **{METRICS[k]: test.get(k) for k in COMPARED}})
    return text_table(table, ["model", "CV ROC AUC", *(METRICS[k] for k in COMPARED)])


def _fairness(f: Mapping[str, Any]) -> str:
    rows = []
    passed: dict[Any, str] = {True: "yes", False: "NO"}
    for name, a in f["attributes"].items():
        if not isinstance(a, Mapping):
            continue
        groups = [g for g in a.get("groups", []) if isinstance(g, Mapping)]
        rows.append({"attribute": label_of(str(name)), "approval-rate ratio": a.get("ratio"),
                     "passed": passed.get(a.get("passed"), "-"),
                     "groups": ", ".join(f"{g.get('group')} ({g.get('n')})" for g in groups)})
    return (f"Fairness (lowest approval rate over highest, at least {f.get('min_ratio')})\n"
            + text_table(rows, ["attribute", "approval-rate ratio", "passed", "groups"]))


def _input(f: Mapping[str, Any]) -> dict[str, Any]:
    if f.get("type") == "category":
        accepts = ", ".join(map(str, f.get("categories") or []))
    else:
        lo, hi = f.get("min"), f.get("max")
        accepts = f"{_cell(lo) if lo is not None else ''} to {_cell(hi) if hi is not None else ''}"
    if f.get("nullable"):
        accepts += " (or empty)"
    default = f.get("default")
    return {"field": f.get("name"), "label": f.get("label") or label_of(str(f.get("name"))),
            "type": f.get("type"), "accepts": accepts, "unit": f.get("unit"),
            "default": _cell(default) if default is not None else None}
