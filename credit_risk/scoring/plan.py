"""The scoring plan: a published model as pure data, and the NumPy code that scores with it.

A plan is three kinds of file, none of them a pickle: ``plan.json`` (the fitted feature
steps: imputation values, training-range caps, derived expressions, category encodings;
the model head; the calibration), ``plan.npz`` (its arrays, read with
``allow_pickle=False``) and, for XGBoost, ``booster.ubj`` (the booster in XGBoost's own
format). The same ``FeaturePlan`` computes features for a training frame's columns
(``credit_risk.pipeline.features.FeatureTransformer.transform``) and for serving's records.
No pandas, no scikit-learn, no joblib: this is the serving side.
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

from credit_risk.errors import CreditRiskError
from credit_risk.scoring.trees import TreeEnsemble
from credit_risk.spec.expressions import parse_expression

PLAN_FILE = "plan.json"
ARRAYS_FILE = "plan.npz"
BOOSTER_FILE = "booster.ubj"
FORMAT = 1
LARGEST = float(np.finfo(np.float32).max)  # finite as float32 too (XGBoost's input type)
UNKNOWN = -2  # a raw categorical value not seen at fit time, before cleaning


class PlanError(CreditRiskError, ValueError):
    """A scoring plan that cannot be loaded or used."""


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def expit(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def cap(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values within the training range [lo, hi]; NaN (e.g. log1p of -2) becomes 0 first."""
    return np.clip(np.nan_to_num(np.asarray(x, dtype=float), nan=0.0, posinf=hi, neginf=lo),
                   lo, hi)


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


class FeaturePlan:
    """Fitted feature steps as data: raw applications to the model's numeric matrix."""

    def __init__(self, plan: Mapping[str, Any]):
        self.names: list[str] = list(plan["names"])
        self.width = len(self.names)
        self.numeric = [(c["name"], float(c["median"]), frozenset(float(m) for m in c["missing"]),
                         float(c["min"]), float(c["max"])) for c in plan["numeric"]]
        self.features: list[str] = list(plan["features"])
        self.derived = [(d["name"], parse_expression(d["expr"]).evaluate, float(d["min"]),
                         float(d["max"])) for d in plan["derived"]]
        self.categorical = []
        for c in plan["categorical"]:
            position = {cat: i for i, cat in enumerate(c["categories"])}
            known = {raw: position.get(self._clean(c, raw), -1)
                     for raw in {*c["categories"], *c["replace"]}}
            self.categorical.append((c, position, known))

    @staticmethod
    def _clean(column: Mapping[str, Any], value: Any) -> Any:
        """A raw category as the training data was cleaned: stripped, replaced, or the mode."""
        if _is_missing(value):
            return column["mode"]
        s = str(value).strip()
        s = column["replace"].get(s, s)
        return column["mode"] if s in {str(m) for m in column["missing"]} else s

    def position(self, index: int, value: Any) -> int:
        """The one-hot position of a raw value of categorical column `index` (-1: none)."""
        column, position, known = self.categorical[index]
        hit = known.get(value) if not _is_missing(value) else None
        return hit if hit is not None else position.get(self._clean(column, value), -1)

    # -- the one implementation of imputation, caps, derived features and encoding ----------
    def assemble(self, numeric: Mapping[str, np.ndarray], positions: Sequence[np.ndarray],
                 n: int) -> np.ndarray:
        """(n, width) features from raw numeric columns (NaN: missing) and one-hot positions."""
        out = np.zeros((n, self.width), dtype=float)
        env: dict[str, np.ndarray] = {}
        for name, median, missing, lo, hi in self.numeric:
            x = np.array(numeric[name], dtype=float)
            if missing:
                x[np.isin(x, list(missing))] = np.nan
            x[np.isnan(x)] = median
            env[name] = cap(x, lo, hi)
        j = 0
        for name in self.features:
            out[:, j] = env[name]
            j += 1
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for _, evaluate, lo, hi in self.derived:
                out[:, j] = cap(np.broadcast_to(evaluate(env), (n,)), lo, hi)
                j += 1
        rows = np.arange(n)
        for (column, _, _), pos in zip(self.categorical, positions, strict=True):
            pos = np.asarray(pos, dtype=np.intp)
            hit = pos >= 0
            out[rows[hit], j + pos[hit]] = 1.0
            j += len(column["categories"])
        return out

    def matrix(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Many applications (dicts of raw values) to an (n, width) matrix."""
        return self.prepare(records)[0]

    def prepare(self, records: Sequence[Mapping[str, Any]]
                ) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
        """Feature rows and, per application, the inputs capped to the training range."""
        if len(records) == 1:
            return self.row(records[0]), [self.warnings(records[0])]
        n = len(records)
        numeric = {name: np.array([r.get(name) for r in records], dtype=float)  # None: NaN
                   for name, *_ in self.numeric}
        warnings: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        for name, median, missing, lo, hi in self.numeric:
            x = numeric[name]
            absent = np.isnan(x) | np.isin(x, list(missing)) if missing else np.isnan(x)
            for i in np.flatnonzero(absent | (x < lo) | (x > hi)).tolist():
                v: Any = records[i].get(name)
                warnings[i].append(_imputed(name, v, median) if absent[i]
                                   else _capped(name, v, lo if v < lo else hi, lo, hi))
        for column, _, _ in self.categorical:
            name = column["name"]
            for i in [i for i, r in enumerate(records) if _is_missing(r.get(name))]:
                warnings[i].append(_imputed(name, None, column["mode"]))
        positions = []
        for i, (column, _, known) in enumerate(self.categorical):
            name = column["name"]
            hits = [known.get(r.get(name), UNKNOWN) for r in records]
            if UNKNOWN in hits:
                hits = [self.position(i, r.get(name)) if h == UNKNOWN else h
                        for h, r in zip(hits, records, strict=True)]
            positions.append(np.array(hits, dtype=np.intp))
        return self.assemble(numeric, positions, n), warnings

    def row(self, record: Mapping[str, Any]) -> np.ndarray:
        """One application to a (1, width) row with plain Python arithmetic (the fast path);
        the tests hold it equal to `matrix`."""
        env: dict[str, float] = {}
        for name, median, missing, lo, hi in self.numeric:
            v: Any = record.get(name)
            x = median if _is_missing(v) or float(v) in missing else float(v)
            env[name] = lo if x < lo else hi if x > hi else x
        out = [env[n] for n in self.features]
        with np.errstate(all="ignore"):
            for _, evaluate, lo, hi in self.derived:
                d = float(evaluate(env))
                d = 0.0 if d != d else d  # as `cap`: NaN to 0, then into [lo, hi]
                out.append(lo if d < lo else hi if d > hi else d)
        for i, (column, _, _) in enumerate(self.categorical):
            hot = [0.0] * len(column["categories"])
            pos = self.position(i, record.get(column["name"]))
            if pos >= 0:
                hot[pos] = 1.0
            out += hot
        return np.array([out], dtype=float)

    def rows(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.row(records[0]) if len(records) == 1 else self.matrix(records)

    def warnings(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The inputs of one application that were not scored as given: missing (imputed) or
        beyond the training range (capped)."""
        out = []
        for name, median, missing, lo, hi in self.numeric:
            v: Any = record.get(name)
            if _is_missing(v) or float(v) in missing:
                out.append(_imputed(name, v, median))
            elif v < lo or v > hi:
                out.append(_capped(name, v, lo if v < lo else hi, lo, hi))
        for column, _, _ in self.categorical:
            if _is_missing(record.get(column["name"])):
                out.append(_imputed(column["name"], None, column["mode"]))
        return out


def _capped(name: str, value: Any, used: float, lo: float, hi: float) -> dict[str, Any]:
    return {"field": name, "value": value, "used": used,
            "message": f"outside the training range [{lo:g}, {hi:g}]: scored as {used:g}"}


def _imputed(name: str, value: Any, used: Any) -> dict[str, Any]:
    said = "missing" if _is_missing(value) else f"{value:g} means missing in the training data"
    shown = f"{used:g}" if isinstance(used, float) else repr(used)
    return {"field": name, "value": None if _is_missing(value) else value, "used": used,
            "message": f"{said}: scored as the typical value {shown}"}


# -- model heads: feature rows -> uncalibrated P(default) ------------------------------------
Head = Callable[[np.ndarray], np.ndarray]


def _linear_head(spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Head:
    w, w0 = arrays["linear_w"], float(spec["intercept"])
    return lambda x: expit(x @ w + w0)


def _forest_head(spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Head:
    """Trees as padded arrays (leaves point at themselves); scikit-learn's rule, float32 input:
    left when x <= threshold; P(default) is the mean of the leaves' class shares."""
    left, right = arrays["forest_left"], arrays["forest_right"]
    feature, threshold = arrays["forest_feature"], arrays["forest_threshold"]
    share, depth = arrays["forest_share"], int(spec["depth"])
    trees = np.arange(left.shape[0])
    width = left.shape[1]
    ids = np.arange(width)
    if not (left.shape == right.shape == feature.shape == threshold.shape == share.shape) \
            or ((left < ids) | (right < ids) | (left >= width) | (right >= width)).any() \
            or (feature < 0).any() or not 0 <= depth <= width:
        raise PlanError("the forest's arrays are not a set of trees")

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
        if self.kind == "linear":
            self._raw = _linear_head(head, arrays)
            self.linear_w = arrays["linear_w"]
        elif self.kind == "forest":
            self._raw = _forest_head(head, arrays)
        elif self.kind == "xgboost":
            xgb_head = _XGBoostHead(head, booster_bytes)
            self._raw, self.booster, self.trees = xgb_head, xgb_head.booster, xgb_head.trees
            samples = self._sample_rows()
            self.walk_margin = xgb_head.trees.matches(xgb_head.booster, samples,
                                                      xgb_head.iterations)
        else:
            raise PlanError(f"unknown model head {self.kind!r}")
        calibration = plan["calibration"]
        if calibration["kind"] == "isotonic":
            xs, ys = arrays["isotonic_x"], arrays["isotonic_y"]
            if xs.shape != ys.shape or xs.ndim != 1 or not len(xs) or (np.diff(xs) < 0).any() \
                    or (ys < 0).any() or (ys > 1).any():
                raise PlanError("the isotonic calibration is not an increasing map into [0, 1]")
            self._calibrate: Head = lambda raw: np.interp(raw, xs, ys)
        elif calibration["kind"] == "sigmoid":
            slope, intercept = float(calibration["slope"]), float(calibration["intercept"])
            if not (math.isfinite(slope) and math.isfinite(intercept)):
                raise PlanError("the sigmoid calibration's parameters are not finite")
            self._calibrate = lambda raw: expit(logit(raw) * slope + intercept)
        else:
            raise PlanError(f"unknown calibration {calibration['kind']!r}")

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
        pd_ = self.predict(self._sample_rows())
        if not (np.isfinite(pd_).all() and (pd_ >= 0).all() and (pd_ <= 1).all()):
            raise PlanError("the scoring plan gives PDs outside [0, 1] (or not numbers) for "
                            "typical applications")

    def _sample_rows(self) -> np.ndarray:
        """A typical application and each numeric input at both ends of its range."""
        records: list[dict[str, Any]] = [{}]
        for name, _, _, lo, hi in self.features.numeric:
            records += [{name: lo}, {name: hi}]
        return np.vstack([self.features.row(r) for r in records])

    def rows(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.features.rows(records)

    def raw_with_contributions(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Uncalibrated PDs and, when one walk of the trees gives them, the per-feature
        contributions (one XGBoost row); else None and the reasons compute their own."""
        if self.walk_margin and self.trees is not None and len(rows) == 1:
            margin, contributions = self.trees.walk(rows[0])
            return expit(np.array([margin], dtype=np.float64)), contributions[None, :]
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

    def __init__(self, spec: Mapping[str, Any], data: bytes | None):
        import xgboost as xgb

        if data is None:
            raise PlanError(f"the scoring plan lacks {BOOSTER_FILE}")
        self.booster = xgb.Booster()
        try:
            self.booster.load_model(bytearray(data))
        except xgb.core.XGBoostError as exc:
            raise PlanError(f"unreadable {BOOSTER_FILE}: {exc}") from exc
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
