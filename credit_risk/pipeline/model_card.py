"""The model card of a version, in Markdown and HTML."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt

from credit_risk.pipeline.policy_card import alternative_sections, policy_sections
from credit_risk.pipeline.run_reports import ComparableChampion, Comparison, SplitInfo
from credit_risk.scoring import bands

METRICS = ("roc_auc", "gini", "ks", "pr_auc", "brier", "brier_uncalibrated", "ece",
           "ece_uncalibrated", "precision", "recall", "f1")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v)).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def model_card_markdown(manifest: dict[str, Any], comparison: Comparison,
                        sections: Sequence[str] = ()) -> str:
    """The card of a version: its manifest, the comparison of the run that trained it, and
    further `sections` (Markdown: the scorecard's points, the validation report) before its
    provenance."""
    spec, split = manifest["spec"], comparison.split
    m = comparison.selected_candidate.test
    status = "**approved** (promoted to champion)" if comparison.approved else (
        "**rejected** (published, not promoted): " + "; ".join(comparison.rejection_reasons))
    protected = [n for n, c in spec["columns"].items() if c.get("protected")]
    derived = [f"`{n} = {d['expr']}`" for n, d in spec.get("derived", {}).items()]
    out = [
        f"# Model card: {manifest['dataset']} / {manifest['model']}",
        f"Version `{manifest['version']}`, trained from code `{manifest['code_version']}`. "
        f"Status: {status}.",
        "## Intended use and limits",
        "Estimates the probability that a loan application defaults, to support (not replace) "
        "a credit decision, for applications like those in the training data "
        f"({spec.get('description') or spec['name']}). It is not valid for other populations, "
        "products or periods without re-validation; PDs are floored at the configured minimum; "
        "drift in the inputs should trigger retraining. Protected attributes "
        f"({', '.join(protected) or 'none declared'}) are not model inputs; they are used only "
        "for the fairness check below.",
        "## Data",
        f"Dataset `{manifest['dataset']}`, fingerprint `{manifest['data_fingerprint'][:16]}…`. "
        f"One split ({_split_rule(split)}): {split.train_rows} training rows (default rate "
        f"{split.train_default_rate:.2%}), {split.test_rows} test rows (default rate "
        f"{split.test_default_rate:.2%}). The test rows are used only for the figures below.",
        "## Data validation",
        f"Great Expectations gate passed on the run's snapshot: {_validation(manifest)} "
        "The result and the Data Docs are stored with this version (`validation.json`, "
        "`data_docs.zip`).",
        "## Features",
        ", ".join(f"`{f}`" for f in manifest["features"]) + ".",
        ("Derived: " + "; ".join(derived) + "." if derived else ""),
        "## Candidates on the same test set",
        _table(["model", "cv_roc_auc", *METRICS, "threshold"],
               [[r.model, r.cv_roc_auc, *(getattr(r.test, k) for k in METRICS),
                 r.test.threshold] for r in comparison.candidates]),
        f"Selected by cross-validated ROC-AUC: **{manifest['model']}** with "
        f"`{manifest['params']}`.",
    ]
    champion = comparison.champion
    if isinstance(champion, ComparableChampion):
        out.append(f"Champion at training time, `{champion.version}`, on the same test set: "
                   f"ROC-AUC {champion.roc_auc:.4f}, ECE {champion.ece:.4f}.")
    out += [
        "## Calibration",
        ("A scorecard is trained without SMOTE (it would shift each bin's default rate); "
         if manifest["model"] == "scorecard" else "SMOTE distorts probabilities; ")
        + "PDs are calibrated on out-of-fold predictions (data the "
        f"fold models did not train on). Test ECE {m.ece_uncalibrated:.4f} before and "
        f"{m.ece:.4f} after calibration; Brier score {m.brier_uncalibrated:.4f} before, "
        f"{m.brier:.4f} after.",
        *_calibration_choice(manifest),
        "![reliability diagram](reliability.png)",
        _table(["PD bin", "n", "mean PD", "observed default rate"],
               [[r.bin, r.n, r.mean_pd, r.default_rate]
                for r in comparison.reliability.calibrated]),
        *_master_scale(manifest),
        "## Decision threshold",
        f"High risk when PD >= {manifest['threshold']:.4f}. Policy: "
        + ", ".join(f"{k} = {v}" for k, v in manifest["threshold_policy"].items())
        + f". On the test set: precision {m.precision:.3f}, recall {m.recall:.3f}, "
        f"F1 {m.f1:.3f}, {m.flagged_rate:.1%} of applications flagged.",
        *policy_sections(comparison.policy),
        "## Credit score",
        "score = offset + factor x ln(good:bad odds), "
        + ", ".join(f"{k} = {v}" for k, v in manifest["score_scaling"].items())
        + f". Bands: {bands.describe()}.",
        "## Fairness",
        f"Approval (Low risk) rate per group on the test set; the gate requires the lowest/highest "
        f"ratio to be at least {comparison.fairness.min_ratio:.2f} for groups of at least "
        f"{comparison.fairness.min_group_size} applications.",
    ]
    for name, attr in comparison.fairness.attributes.items():
        ratio = "n/a" if attr.ratio is None else f"{attr.ratio:.3f}"
        out.append(f"**{name}**: ratio {ratio}, {'passed' if attr.passed else 'FAILED'}.")
        out.append(_table(["group", "n", "approval rate", "judged"],
                          [[g.group, g.n, g.approval_rate, "yes" if g.counted else
                            "no (small)"] for g in attr.groups]))
    out += [*alternative_sections(comparison.alternatives), *sections, "## Provenance",
            ", ".join(f"{k} {v}" for k, v in manifest["libraries"].items()) + "."]
    return "\n\n".join(part for part in out if part) + "\n"


def _calibration_choice(manifest: dict[str, Any]) -> list[str]:
    """The calibration chosen and every method's cross-validated log loss."""
    cal = manifest.get("calibration")
    if not cal:
        return []
    losses = cal.get("cv_log_loss") or {}
    return [f"Calibration: **{cal['method']}**, PDs floored at {cal['pd_floor']:.2%} (and capped "
            f"at {1 - cal['pd_floor']:.2%}). "
            + ("Chosen among these by log loss, cross-validated on the out-of-fold PDs:"
               if losses else "Too few defaults to cross-validate the choice."),
            _table(["method", "cv log loss"],
                   [[m, v] for m, v in sorted(losses.items(), key=lambda kv: kv[1])])
            if losses else ""]


def _master_scale(manifest: dict[str, Any]) -> list[str]:
    """The master scale: each grade's PD bounds and the test rows it holds."""
    grades = manifest.get("master_scale")
    if not grades:
        return []

    def pct(v: float | None) -> str:  # three significant figures: bounds go down to 0.03%
        return "-" if v is None else f"{v * 100:.3g}%"

    return ["## Master scale",
            "Rating grades by PD (a grade holds PDs from its lower bound up to, not including, "
            "its upper one; the last includes 1), stored with this version; the test rows in "
            "each grade, their mean PD and observed default rate.",
            _table(["grade", "PD from", "PD to", "test rows", "share", "mean PD",
                    "observed default rate"],
                   [[g["grade"], pct(g["min_pd"]), pct(g["max_pd"]), g["n"], f"{g['share']:.1%}",
                     pct(g["mean_pd"]), pct(g["default_rate"])] for g in grades])]


def _split_rule(split: SplitInfo) -> str:
    rule = split.split_rule
    if rule.key:
        return (f"by a seeded hash of `{rule.key}`, so a row keeps its side in later "
                f"snapshots; test share {rule.test_size}")
    return f"stratified, random, seed {rule.seed}, test share {rule.test_size}"


def _validation(manifest: dict[str, Any]) -> str:
    v = manifest.get("validation") or {}
    warnings = v.get("warnings") or []
    return f"{v.get('summary', 'n/a')}." + (
        f" Warnings recorded: {', '.join(warnings)}." if warnings else " No warnings.")


def markdown_to_html(markdown: str) -> str:
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Model card</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2rem auto;"
            "padding:0 1rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:.2rem .5rem;text-align:right}img{max-width:100%}</style></head><body>"
            f"{body}</body></html>\n")
