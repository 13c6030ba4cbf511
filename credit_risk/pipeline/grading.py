"""What a version's manifest and model card say about its PDs: the calibration chosen (and
each method's cross-validated log loss) and the master scale with the test rows per grade."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from credit_risk.pipeline.train import CalibratedModel
from credit_risk.scoring.grades import MasterScale


def grade_table(y: np.ndarray, pd_: np.ndarray, scale: MasterScale) -> list[dict[str, Any]]:
    """Each grade of the scale: its PD bounds, rows, share of rows, mean PD and observed default
    rate (None for a grade without rows)."""
    y, pd_ = np.asarray(y, dtype=float), np.asarray(pd_, dtype=float)
    at = scale.index(pd_)
    rows = []
    for i, (name, low, high) in enumerate(zip(scale.names, scale.lower(), scale.upper,
                                              strict=True)):
        mask = at == i
        n = int(mask.sum())
        rows.append({"grade": name, "min_pd": low, "max_pd": high, "n": n,
                     "share": n / len(y) if len(y) else 0.0,
                     "mean_pd": float(pd_[mask].mean()) if n else None,
                     "default_rate": float(y[mask].mean()) if n else None})
    return rows


def pd_summary(model: CalibratedModel, X_test: pd.DataFrame, y_test: np.ndarray
               ) -> dict[str, Any]:
    """The manifest's `calibration` (method, PD floor, CV log losses) and `master_scale` (the
    grades with the test rows in each)."""
    return {"calibration": model.calibrator.summary(),
            "master_scale": grade_table(y_test, model.predict_pd(X_test), model.master_scale)}
