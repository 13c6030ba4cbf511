"""Bring your own data at scale: the 200,000-row SBA-like single table of
tests/model/test_byod_scale.py trained by its spec alone (XGBoost, the default search); wall and
CPU time (all threads) against the goal of 5 minutes of CPU.

Writes benchmarks/byod_scale.md and .json. Run: `make bench-byod-scale` (a few minutes).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]
from bench_pipeline import machine  # noqa: E402

from credit_risk.pipeline import steps as pipeline  # noqa: E402
from credit_risk.registry import Registry  # noqa: E402
from tests.conftest import small_settings  # noqa: E402
from tests.model.test_byod_scale import SPEC, sba_like  # noqa: E402

OUT = Path(__file__).parent
ROWS = 200_000
GOAL_CPU_S = 300


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        frame, _ = sba_like(ROWS)
        frame.to_csv(base / "sba.csv", index=False)
        (base / "sba.yaml").write_text(SPEC.format(csv=base / "sba.csv"))
        settings = small_settings(base, dataset_spec=str(base / "sba.yaml"), models=("xgboost",),
                                  search_iterations=4)  # as the test: the default search
        start, cpu = time.perf_counter(), time.process_time()
        version = pipeline.run_all(settings, "sba")
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        metrics = Registry(settings.registry.url).manifest(version)["metrics"]
    result = {"date": datetime.now(UTC).date().isoformat(), "machine": machine(), "rows": ROWS,
              "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "goal_cpu_s": GOAL_CPU_S,
              "goal_met": cpu < GOAL_CPU_S, "roc_auc": metrics["roc_auc"], "ece": metrics["ece"]}
    (OUT / "byod_scale.json").write_text(json.dumps(result, indent=2))
    md = ["# Bring your own data: 200,000 SBA-like rows", "",
          f"Date {result['date']}; machine: {result['machine']}. Command: "
          "`make bench-byod-scale`.", "",
          f"Wall {wall:.1f} s, CPU {cpu:.1f} s (all threads); goal: CPU under {GOAL_CPU_S} s "
          f"({'met' if result['goal_met'] else 'MISSED'}). Test ROC-AUC "
          f"{metrics['roc_auc']:.4f}, ECE {metrics['ece']:.4f}."]
    (OUT / "byod_scale.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
