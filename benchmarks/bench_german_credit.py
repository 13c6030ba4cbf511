"""German credit: the champion's held-out ROC-AUC over several train/test split seeds.

One 200-row test split swings by about +-0.05, so the figure that counts is the mean over
seeds. Writes benchmarks/german_credit.md and .json. Run: `make bench-german`.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from credit_risk.config import Settings
from credit_risk.pipeline import steps as pipeline
from credit_risk.registry.store import Registry

OUT = Path(__file__).parent
SEEDS = [int(s) for s in sys.argv[1:]] or [1, 2, 3, 4, 5, 6, 7, 8]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    import os

    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in SEEDS:
            settings = Settings(data_dir=Path(tmp) / "data", runs_dir=Path(tmp) / "runs",
                                registry_url=f"{tmp}/registry-{seed}", seed=seed, cv_folds=5,
                                search_iterations=8, decision_log=None)
            start = time.perf_counter()
            version = pipeline.run_all(settings, f"german-{seed}", "german_credit")
            m = Registry(settings.registry.url).manifest(version)
            rows.append({"seed": seed, "selected": m["model"], "cv_roc_auc": m["cv_roc_auc"],
                         "test_roc_auc": m["metrics"]["roc_auc"],
                         "candidates": {r["model"]: r["test"]["roc_auc"] for r in m["comparison"]},
                         "status": m["status"], "rejection_reasons": m["rejection_reasons"],
                         "seconds": round(time.perf_counter() - start, 1)})
            print(rows[-1], flush=True)
    mean = statistics.mean(r["test_roc_auc"] for r in rows)
    sd = statistics.stdev(r["test_roc_auc"] for r in rows)
    result = {"date": datetime.now(UTC).date().isoformat(), "machine": machine(),
              "settings": {"cv_folds": 5, "search_iterations": 8, "test_size": 0.2},
              "mean_test_roc_auc": mean, "sd_test_roc_auc": sd, "target": 0.77, "runs": rows}
    (OUT / "german_credit.json").write_text(json.dumps(result, indent=2))
    names = sorted(rows[0]["candidates"])
    lines = [
        "# German credit: held-out ROC-AUC over split seeds", "",
        f"Date {result['date']}; machine: {result['machine']}.",
        "Command: `make bench-german` (5-fold CV, 8 search trials per model, 20% test split).", "",
        f"**Selected model's test ROC-AUC: mean {mean:.4f} (sd {sd:.4f}) over {len(rows)} seeds; "
        f"target >= 0.77.** Published results: about 0.75-0.80.", "",
        "| seed | selected | CV ROC-AUC | test ROC-AUC | " + " | ".join(names)
        + " | gate | seconds |",
        "|---|---|---|---|" + "---|" * len(names) + "---|---|",
    ]
    for r in rows:
        gate = r["status"] + ("" if r["status"] == "approved"
                              else ": " + "; ".join(r["rejection_reasons"]))
        lines.append(f"| {r['seed']} | {r['selected']} | {r['cv_roc_auc']:.4f} | "
                     f"{r['test_roc_auc']:.4f} | "
                     + " | ".join(f"{r['candidates'][n]:.4f}" for n in names)
                     + f" | {gate} | {r['seconds']} |")
    (OUT / "german_credit.md").write_text("\n".join(lines) + "\n")
    print(f"mean test ROC-AUC {mean:.4f} sd {sd:.4f}")


if __name__ == "__main__":
    main()
