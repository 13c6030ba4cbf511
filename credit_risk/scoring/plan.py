"""The scoring plan: a published model as pure data, and the NumPy code that scores with it.

A plan is three kinds of file, none of them a pickle: ``plan.json`` (the fitted feature
steps: imputation values, training-range caps, derived expressions, category encodings;
the model head; the calibration and the PD floor; the master scale of rating grades),
``plan.npz`` (its arrays, read with ``allow_pickle=False``) and, for XGBoost,
``booster.ubj`` (the booster in XGBoost's own format). The same ``FeaturePlan``
(``credit_risk.scoring.features``) computes features for a training frame's columns and for
serving's records. No pandas, no scikit-learn, no joblib:
this is the serving side.

Every plan is checked when it is read, signed or not: its feature steps (finite values, each
range's min at most its max, names matching the steps), the head's arrays against the number
of features, a calibration that never lowers the PD as the model's score rises, inside
[0, 1], and a master scale whose PD bounds increase to 1. A plan that fails is refused with
a PlanError naming what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from credit_risk.scoring.calibration import calibration_map, expit
from credit_risk.scoring.calibration import logit as logit  # re-exported for training
from credit_risk.scoring.features import FeaturePlan, PlanError
from credit_risk.scoring.grades import MasterScale
from credit_risk.scoring.scorecard import ScorecardHead
from credit_risk.scoring.trees import TreeEnsemble

PLAN_FILE = "plan.json"
ARRAYS_FILE = "plan.npz"
BOOSTER_FILE = "booster.ubj"
FORMAT = 1


# -- model heads: feature rows -> uncalibrated P(default) ------------------------------------
Head = Callable[[np.ndarray], np.ndarray]


def _linear_head(spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray], width: int) -> Head:
    w, w0 = arrays["linear_w"], float(spec["intercept"])
    if w.shape != (width,):
        raise PlanError(f"the linear model has {w.shape} weights for {width} features")
    if not math.isfinite(w0):
        raise PlanError("the linear model's intercept is not a finite number")
    # row by row, not a matrix product: a BLAS product's last bits depend on the batch's size,
    # and a row must score the same alone, in a batch or in any chunk of a file
    return lambda x: expit((np.asarray(x, dtype=np.float64) * w).sum(axis=1) + w0)


def _forest_head(spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray], width: int) -> Head:
    """Trees as padded arrays (leaves point at themselves); scikit-learn's rule, float32 input:
    left when x <= threshold; P(default) is the mean of the leaves' class shares."""
    left, right = arrays["forest_left"], arrays["forest_right"]
    feature, threshold = arrays["forest_feature"], arrays["forest_threshold"]
    share, depth = arrays["forest_share"], int(spec["depth"])
    trees = np.arange(left.shape[0])
    nodes = left.shape[1] if left.ndim == 2 else 0
    ids = np.arange(nodes)
    if left.ndim != 2 \
            or not (left.shape == right.shape == feature.shape == threshold.shape == share.shape) \
            or ((left < ids) | (right < ids) | (left >= nodes) | (right >= nodes)).any() \
            or (feature < 0).any() or not 0 <= depth <= nodes:
        raise PlanError("the forest's arrays are not a set of trees")
    if (feature >= width).any():
        raise PlanError(f"the forest splits on feature {int(feature.max())}; the plan has "
                        f"{width} features")
    if ((share < 0) | (share > 1)).any():
        raise PlanError("the forest's leaf shares of defaults are not inside [0, 1]")

    def forest(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).astype(np.float64)
        node = np.zeros((len(x), len(trees)), dtype=np.intp)
        rows = np.arange(len(x))[:, None]
        for _ in range(depth):
            f = feature[trees, node]
            go_left = x[rows, f] <= threshold[trees, node]
            node = np.where(go_left, left[trees, node], right[trees, node])
        return share[trees, node].mean(axis=1)

    return forest


class ScoringPlan:
    """Records or feature rows in, calibrated PDs out; loaded from a version's plan files."""

    def __init__(self, plan: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                 booster_bytes: bytes | None = None):
        if not isinstance(plan, Mapping):
            raise PlanError("the scoring plan is not a JSON object")
        try:
            self._read(plan, arrays, booster_bytes)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise PlanError(f"malformed scoring plan: {exc!r} is missing or of the wrong "
                            "type") from exc

    def _read(self, plan: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
              booster_bytes: bytes | None) -> None:
        if plan.get("format") != FORMAT:
            raise PlanError(f"scoring plan format {plan.get('format')!r} is not {FORMAT}: "
                            "re-publish the model with this version of credit-risk")
        self.plan = plan
        bad = [k for k, a in arrays.items() if a.dtype.kind not in "biuf"
               or (a.dtype.kind == "f" and not np.isfinite(a).all())]
        if bad:
            raise PlanError(f"the scoring plan's arrays {', '.join(sorted(bad))} are not all "
                            "finite numbers")
        self.features = FeaturePlan(plan["features"])
        head = plan["head"]
        self.kind: str = head["kind"]
        self.booster: Any = None
        self.trees: TreeEnsemble | None = None  # XGBoost's trees in NumPy
        self.walk_margin = False  # one row's PD from the walk: it equals XGBoost's own
        self.linear_w: np.ndarray | None = None
        self.scorecard: ScorecardHead | None = None  # the points scorecard's bins
        self.iteration_range = (0, 0)  # XGBoost's trees used, (0, 0): all
        width = self.features.width
        if self.kind == "linear":
            self._raw = _linear_head(head, arrays, width)
            self.linear_w = arrays["linear_w"]
        elif self.kind == "forest":
            self._raw = _forest_head(head, arrays, width)
        elif self.kind == "scorecard":
            self.scorecard = ScorecardHead(head, self.features.names)
            self._raw = self.scorecard
        elif self.kind == "xgboost":
            xgb_head = _XGBoostHead(head, booster_bytes, width)
            self._raw, self.booster, self.trees = xgb_head, xgb_head.booster, xgb_head.trees
            self.iteration_range = xgb_head.iterations
            samples = self.sample_rows()
            self.walk_margin = xgb_head.trees.matches(xgb_head.booster, samples,
                                                      xgb_head.iterations)
        else:
            raise PlanError(f"unknown model head {self.kind!r}")
        self._calibrate = calibration_map(plan["calibration"], arrays)
        self.master_scale = MasterScale.from_plan(plan.get("master_scale"))

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], signed: bool = True) -> ScoringPlan:
        """The plan from its files' bytes (already verified against the manifest). Unless the
        manifest's signature was verified (`signed`), the booster is first loaded in a
        throwaway process: malformed bytes can crash XGBoost itself."""
        try:
            plan = json.loads(files[PLAN_FILE])
            arrays = _arrays(files[ARRAYS_FILE])
        except KeyError as exc:
            raise PlanError(f"the scoring plan lacks {exc.args[0]}") from exc
        except (ValueError, zipfile.BadZipFile) as exc:  # bad JSON, an array needing pickle
            raise PlanError(f"unreadable scoring plan: {exc}") from exc
        booster = files.get(BOOSTER_FILE)
        if booster is not None and not signed:
            _probe_booster(booster)
        plan_ = cls(plan, arrays, booster)
        plan_._check_sample()
        return plan_

    def _check_sample(self) -> None:
        """Refuse a plan that gives anything but a PD in [0, 1] on the sample rows."""
        pd_ = self.predict(self.sample_rows())
        if not (np.isfinite(pd_).all() and (pd_ >= 0).all() and (pd_ <= 1).all()):
            raise PlanError("the scoring plan gives PDs outside [0, 1] (or not numbers) for "
                            "typical applications")

    def sample_rows(self) -> np.ndarray:
        """A typical application and each numeric input at both ends of its range."""
        features = self.features
        records: list[dict[str, Any]] = [{}]
        for name, lo, hi in zip(features.inputs, features.lows, features.highs, strict=True):
            records += [{name: float(lo)}, {name: float(hi)}]
        return features.matrix(records)

    def rows(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.features.matrix(records)

    def raw_with_contributions(self, rows: np.ndarray, reasons: bool = True
                               ) -> tuple[np.ndarray, np.ndarray | None]:
        """Uncalibrated PDs and, when the same pass gives them, the per-feature contributions
        (one XGBoost row: a walk of its trees; the scorecard's rows, when `reasons`: one
        binning); else None and the reasons compute their own."""
        if self.walk_margin and self.trees is not None and len(rows) == 1:
            margin, contributions = self.trees.walk(rows[0])
            return expit(np.array([margin], dtype=np.float64)), contributions[None, :]
        if self.scorecard is not None and reasons:
            return self.scorecard.pd_and_lost(rows)
        return self.predict_raw(rows), None

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        return np.asarray(self._calibrate(raw), dtype=float)

    def predict_raw(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self._raw(rows), dtype=float)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Calibrated PDs of feature rows."""
        return np.asarray(self._calibrate(self.predict_raw(rows)), dtype=float)

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.predict(self.rows(records)) if records else np.empty(0)


class _XGBoostHead:
    """The booster on one thread; for a single row, the same margin from its trees in NumPy."""

    def __init__(self, spec: Mapping[str, Any], data: bytes | None, width: int):
        import xgboost as xgb

        if data is None:
            raise PlanError(f"the scoring plan lacks {BOOSTER_FILE}")
        self.booster = xgb.Booster()
        try:
            self.booster.load_model(bytearray(data))
        except xgb.core.XGBoostError as exc:
            raise PlanError(f"unreadable {BOOSTER_FILE}: {exc}") from exc
        if self.booster.num_features() != width:
            raise PlanError(f"{BOOSTER_FILE} takes {self.booster.num_features()} features; the "
                            f"plan has {width}")
        self.booster.set_param({"nthread": 1})  # one thread per worker: workers are the parallelism
        self.iterations = (int(spec["iteration_range"][0]), int(spec["iteration_range"][1]))
        try:
            self.trees = TreeEnsemble(self.booster, self.iterations)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise PlanError(f"unreadable trees in {BOOSTER_FILE}: {exc}") from exc

    def __call__(self, x: np.ndarray) -> np.ndarray:
        margin = self.booster.inplace_predict(
            np.asarray(x, dtype=np.float32), predict_type="margin",
            iteration_range=self.iterations, validate_features=False)
        return expit(np.asarray(margin, dtype=np.float64).reshape(-1))


MAX_ARRAYS_BYTES = 2 * 1024**3  # the plan's arrays, unpacked


def _arrays(data: bytes) -> dict[str, np.ndarray]:
    """The .npz's arrays: stored members only (we never compress, so no zip bomb), no pickle."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
        if any(m.compress_type != zipfile.ZIP_STORED for m in members) \
                or sum(m.file_size for m in members) > MAX_ARRAYS_BYTES:
            raise PlanError(f"{ARRAYS_FILE} holds compressed or oversized members")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


PROBE = """
import sys, numpy as np, xgboost as xgb
b = xgb.Booster()
b.load_model(bytearray(sys.stdin.buffer.read()))
b.inplace_predict(np.zeros((1, b.num_features()), dtype=np.float32))
"""


_probed: set[str] = set()  # boosters that loaded in a probe, by SHA-256


def _probe_booster(data: bytes, timeout_s: float = 60.0) -> None:
    """Load and run an unsigned booster in a child process first: a crash there is a refusal."""
    digest = hashlib.sha256(data).hexdigest()
    if digest in _probed:
        return
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], input=data, capture_output=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise PlanError(f"{BOOSTER_FILE} did not load within {timeout_s:g} s") from exc
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["killed"]
        raise PlanError(f"{BOOSTER_FILE} cannot be loaded by XGBoost (exit {done.returncode}: "
                        f"{tail[0][:200]})")
    _probed.add(digest)
