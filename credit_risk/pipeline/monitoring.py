"""Monitoring: the champion's reference (training) inputs vs recent scored traffic.

Population stability index (PSI) per application field, plus an Evidently data-drift
report (HTML) and a plot of the PSI (psi.png). Drift is declared when any field's PSI reaches
the threshold (0.25 is the usual "significant shift"); the monitoring DAG then emits the drift
Asset.

`performance_step`: the decisions that have matured (`performance_months_on_book`) joined
with the observed outcomes (credit_risk.records.outcomes), judged by
`credit_risk.pipeline.performance` against each version's training figures:
performance.json and performance.png in the monitoring run folder; an alert also emits the
drift Asset.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.config import Settings
from credit_risk.pipeline.run_paths import (
    is_url,
    join,
    makedirs,
    monitoring_dir,
    write_bytes,
)
from credit_risk.pipeline.run_reports import DriftReport, PerformanceReport, write_report
from credit_risk.records.backends import decision_log_at, open_decision_log, open_outcomes
from credit_risk.records.decisions import CHUNK_ROWS, DecisionLog
from credit_risk.registry import RegistryError
from credit_risk.registry.champion import registry_for
from credit_risk.spec.codes import category_text

log = logging.getLogger(__name__)
REFERENCE_FILE = "reference.parquet"
PSI_PLOT = "psi.png"
DRIFT_FILE = "drift.json"
PERFORMANCE_FILE = "performance.json"
PERFORMANCE_PLOT = "performance.png"
_EPS = 1e-4
MISSING = "<missing>"
# The Evidently report compares the reference (REFERENCE_ROWS training rows) with a uniform
# sample of the window of at most this many decisions: four times the reference, past which
# its tests gain little and its cost keeps growing with the rows (PSI uses every row).
REFERENCE_ROWS = 5000
EVIDENTLY_SAMPLE_ROWS = 20_000


def numeric_edges(reference: np.ndarray, bins: int = 10) -> np.ndarray:
    """The inner edges of the reference's quantile bins (duplicates merged)."""
    ref = np.asarray(reference, dtype=float)
    return np.unique(np.nanquantile(ref, np.linspace(0, 1, bins + 1))[1:-1])


def numeric_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows per bin of `edges` (len(edges) + 1 bins), missing values in a bin of their own."""
    x = np.asarray(values, dtype=float)
    idx = np.where(np.isnan(x), len(edges) + 1, np.searchsorted(edges, x, side="right"))
    return np.bincount(idx.astype(int), minlength=len(edges) + 2)


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI over the reference's quantile bins (missing values are a bin of their own)."""
    edges = numeric_edges(reference, bins)
    return _psi(numeric_counts(reference, edges) / len(reference),
                numeric_counts(current, edges) / len(current))


def _categories(values: pd.Series) -> pd.Series:
    """Each value's category as the model spells it (training files may hold the code 1 where
    the log holds "1"), missing values as one more category."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    texts = np.array([category_text(u) for u in uniques] + [MISSING], dtype=object)
    return pd.Series(texts[codes], index=values.index, dtype=object)  # code -1: MISSING


def psi_categorical(reference: pd.Series, current: pd.Series) -> float:
    """PSI over the categories of both samples (missing values are a category)."""
    ref, cur = _categories(reference), _categories(current)
    cats = sorted(set(ref) | set(cur), key=str)
    return _psi(ref.value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy(),
                cur.value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy())


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e, a = np.clip(expected, _EPS, None), np.clip(actual, _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


class DriftAccumulator:
    """The PSI of every field over all rows of a window, and a uniform sample of those rows for
    Evidently, fed one chunk at a time.

    The reference fixes the numeric bins, so the chunks' bin counts (and category counts) add
    up to the window's: the PSI equals `psi_numeric` / `psi_categorical` on the whole window
    at once. The sample keeps the `sample_rows` rows with the smallest random keys (seeded): a
    uniform sample without replacement, in arrival order; all rows when there are no more.
    Memory holds one chunk, the counts and the sample, whatever the window's size."""

    def __init__(self, reference: pd.DataFrame, fields: list[dict[str, Any]],
                 sample_rows: int = 0, seed: int = 0, bins: int = 10):
        self.fields = fields
        self.names = [f["name"] for f in fields]
        self.sample_rows = sample_rows
        self.rows = 0
        self._ref_rows = len(reference)
        self._edges: dict[str, np.ndarray] = {}
        self._ref: dict[str, Any] = {}
        self._cur: dict[str, Any] = {}
        for f in fields:
            name = f["name"]
            if f["type"] == "category":
                self._ref[name] = _categories(reference[name]).value_counts()
                self._cur[name] = {}
            else:
                values = pd.to_numeric(reference[name], errors="coerce").to_numpy()
                self._edges[name] = numeric_edges(values, bins)
                self._ref[name] = numeric_counts(values, self._edges[name])
                self._cur[name] = np.zeros(len(self._edges[name]) + 2, dtype=np.int64)
        self._rng = np.random.default_rng(seed)
        # The sample: the rows with the smallest keys so far, in parts (arrival order) cut back
        # to `sample_rows` now and then; `_bar`, the largest key kept after the last cut.
        self._parts: list[pd.DataFrame] = [pd.DataFrame(columns=self.names, dtype=object)]
        self._part_keys: list[np.ndarray] = [np.empty(0)]
        self._held = 0
        self._bar = 1.0

    def add(self, chunk: pd.DataFrame) -> None:
        """Count a chunk of the window (its application fields) and sample from it."""
        if chunk.empty:
            return
        self.rows += len(chunk)
        for name in self.names:
            col = chunk[name] if name in chunk.columns else pd.Series(np.nan, index=chunk.index)
            cur = self._cur[name]
            if isinstance(cur, dict):
                for value, n in _categories(col).value_counts().items():
                    cur[value] = cur.get(value, 0) + int(n)
            else:
                cur += numeric_counts(pd.to_numeric(col, errors="coerce").to_numpy(),
                                      self._edges[name])
        self._add_to_sample(chunk)

    def _add_to_sample(self, chunk: pd.DataFrame) -> None:
        k = self.sample_rows
        if k <= 0:
            return
        keys = self._rng.random(len(chunk))
        take = keys < self._bar  # a row at or above the bar can no longer be among the k
        if not take.all():
            chunk, keys = chunk[take], keys[take]
        if not len(keys):
            return
        self._parts.append(chunk.reindex(columns=self.names).astype(object))
        self._part_keys.append(keys)
        self._held += len(keys)
        if self._held >= 2 * k:  # cut back to k now and then, not per chunk
            self._compact()

    def _compact(self) -> None:
        parts = [p for p in self._parts if len(p)] or self._parts[:1]
        frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        keys = np.concatenate(self._part_keys)
        if len(keys) > self.sample_rows:
            keep = np.sort(np.argpartition(keys, self.sample_rows - 1)[:self.sample_rows])
            frame, keys = frame.iloc[keep].reset_index(drop=True), keys[keep]
            self._bar = float(keys.max())
        self._parts, self._part_keys, self._held = [frame], [keys], len(keys)

    def sample(self) -> pd.DataFrame:
        """The sampled rows of the window in arrival order (types inferred over the sample)."""
        self._compact()
        return self._parts[0].infer_objects()

    def psi_table(self) -> list[dict[str, Any]]:
        """PSI per field over every row added, largest first."""
        out = []
        for name in self.names:
            ref, cur = self._ref[name], self._cur[name]
            if isinstance(cur, dict):
                cats = sorted(set(ref.index) | set(cur), key=str)
                expected = ref.reindex(cats, fill_value=0).to_numpy() / self._ref_rows
                actual = np.array([cur.get(c, 0) for c in cats]) / self.rows
                value = _psi(expected, actual)
            else:
                value = _psi(ref / self._ref_rows, cur / self.rows)
            out.append({"field": name, "psi": value})
        return sorted(out, key=lambda r: -r["psi"])


def reference_sample(X_train: pd.DataFrame, fields: list[dict[str, Any]],
                     n: int = REFERENCE_ROWS,
                     seed: int = 0) -> bytes:
    """The training inputs to compare traffic with (a sample of the application fields)."""
    names = [f["name"] for f in fields]
    sample = X_train[names].sample(min(n, len(X_train)), random_state=seed)
    buf = io.BytesIO()
    sample.to_parquet(buf, index=False)
    return buf.getvalue()


def recent_traffic(decision_log: DecisionLog | Path | str, since: datetime,
                   dataset_versions: set[str], until: datetime | None = None,
                   columns: list[str] | None = None,
                   chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """Inputs of the decisions logged in [since, until) by versions of the champion's
    dataset: a windowed read in chunks of `chunk_rows` (file or database alike), each chunk
    cut to `columns` (if given) before the next is read, so memory holds the window's
    application fields, never the whole log."""
    dlog = (decision_log if isinstance(decision_log, DecisionLog)
            else decision_log_at(decision_log))
    frames = [pd.DataFrame([d["inputs"] for d in chunk], columns=columns)
              for chunk in dlog.iter_chunks(since, until, model_versions=dataset_versions,
                                            chunk_rows=chunk_rows, columns=("inputs",))]
    if not frames:
        return pd.DataFrame(columns=columns)
    if len(frames) == 1:
        return frames[0]
    # A chunk whose column is all missing is of object type: infer again over the window.
    return pd.concat([f.astype(object) for f in frames], ignore_index=True).infer_objects()


def drift_table(reference: pd.DataFrame, current: pd.DataFrame,
                fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PSI per field of a whole current frame at once, largest first."""
    acc = DriftAccumulator(reference, fields)
    acc.add(current)
    return acc.psi_table()


def traffic_chunks(dlog: DecisionLog, since: datetime, until: datetime | None,
                   dataset_versions: set[str], names: list[str],
                   chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The application fields of the window's decisions by `dataset_versions`, a frame per
    chunk of the log. Only `inputs` and `model_version` are read (PostgreSQL neither fetches
    nor decodes the rest of a decision: most of a record's bytes are the result's reasons).
    The versions are picked here, not in the log's query: PostgreSQL then reads the window
    along its (at, id) index alone, where a version filter can make it take the
    (model_version, at) index and sort the window (with pages of a query each, for every
    page: minutes on a million decisions)."""
    for chunk in dlog.iter_chunks(since, until, chunk_rows=chunk_rows,
                                  columns=("inputs", "model_version")):
        rows = [d["inputs"] for d in chunk if d.get("model_version") in dataset_versions]
        if rows:
            yield pd.DataFrame(rows, columns=names)


def evidently_report(reference: pd.DataFrame, current: pd.DataFrame,
                     path: Path | str) -> dict[str, Any]:
    """Evidently's data-drift preset: write the HTML report (a local path or a URL), return
    its metric values."""
    import tempfile

    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    if is_url(path):
        with tempfile.TemporaryDirectory() as tmp:
            snapshot.save_html(f"{tmp}/report.html")
            write_bytes(path, Path(tmp, "report.html").read_bytes())
    else:
        snapshot.save_html(str(path))
    return snapshot.dict()


def drift_step(settings: Settings, run_id: str,
               evidently_rows: int = EVIDENTLY_SAMPLE_ROWS) -> str:
    """Compare recent traffic with the champion's training inputs; return the result path.

    PSI on every decision of the window; the Evidently report on a uniform sample of at most
    `evidently_rows` of them (seeded by `settings.training.seed`), both streamed from the log in
    chunks.
    """
    out = monitoring_dir(settings, run_id)
    makedirs(out)
    head: dict[str, Any] = {"run_id": run_id, "at": datetime.now(UTC).isoformat(),
                            "psi_threshold": settings.monitoring.drift_psi_threshold,
                            "drift": False}
    registry = registry_for(settings)  # the dataset serving serves
    champion = registry.alias_version("champion")
    if champion is None:
        return _write(out, DriftReport(**head, status="no champion"))
    manifest = registry.manifest(champion)
    try:
        reference = pd.read_parquet(io.BytesIO(registry.read_file(champion, REFERENCE_FILE)))
    except RegistryError as exc:
        return _write(out, DriftReport(**head, status=f"no reference data: {exc}"))
    same_dataset = {v for v in registry.versions()
                    if registry.manifest(v).get("dataset") == manifest["dataset"]}
    until = datetime.now(UTC)
    since = until - timedelta(days=settings.monitoring.drift_window_days)
    fields = manifest["inputs"]
    names = [f["name"] for f in fields]
    acc = DriftAccumulator(reference, fields, sample_rows=evidently_rows,
                           seed=settings.training.seed)
    dlog = open_decision_log(settings)
    try:
        for chunk in traffic_chunks(dlog, since, until, same_dataset, names) \
                if dlog is not None else ():
            acc.add(chunk)
    finally:
        if dlog is not None:
            dlog.close()
    head.update(champion=champion, dataset=manifest["dataset"], reference_rows=len(reference),
                current_rows=acc.rows, window_days=settings.monitoring.drift_window_days)
    if acc.rows < settings.monitoring.drift_min_rows:
        return _write(out, DriftReport(
            **head, status=f"too little traffic: {acc.rows} decisions in "
                           f"{settings.monitoring.drift_window_days} days "
                           f"(< {settings.monitoring.drift_min_rows})"))
    table = acc.psi_table()
    sample = acc.sample()
    evidently = evidently_report(reference[names], sample, join(out, "drift_report.html"))
    drifted = [r["field"] for r in table if r["psi"] >= settings.monitoring.drift_psi_threshold]
    from credit_risk.pipeline.monitoring_plots import psi_plot

    write_bytes(join(out, PSI_PLOT), psi_plot(table, settings.monitoring.drift_psi_threshold))
    head.update(drift=bool(drifted))
    return _write(out, DriftReport(
        **head, status="ok", drifted_fields=drifted, psi=table, psi_rows=acc.rows,
        evidently_sample_rows=len(sample), evidently=evidently["metrics"][0]["value"],
        report="drift_report.html", plot=PSI_PLOT))


def _write(out: Path | str, report: DriftReport) -> str:
    path = write_report(report, join(out, DRIFT_FILE))
    log.info("drift check: %s; drift=%s %s", report.status, report.drift,
             report.drifted_fields or "")
    return path


def _months_before(t: datetime, months: int) -> datetime:
    return (pd.Timestamp(t) - pd.DateOffset(months=months)).to_pydatetime()


def matured_decisions(dlog: DecisionLog, since: datetime, until: datetime,
                      chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """The decisions recorded in [since, until) that carry an application id, as a decisions
    frame: read in chunks, each cut to the five columns performance needs."""
    from credit_risk.pipeline.performance import DECISION_COLUMNS, decisions_frame

    frames = [decisions_frame(chunk) for chunk in dlog.iter_chunks(since, until,
                                                                   chunk_rows=chunk_rows)]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(DECISION_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def load_outcomes_step(settings: Settings) -> dict[str, Any]:
    """Load the configured outcome source (outcomes_csv or outcomes_sql) into the outcome
    store; idempotent: what is stored already is not stored again. Nothing configured: a no-op."""
    import os

    from credit_risk.errors import CreditRiskError
    from credit_risk.records.outcomes import read_csv, read_sql

    if settings.monitoring.outcomes_csv is not None:
        csv = settings.monitoring.outcomes_csv
        source, chunks = str(csv), read_csv(csv)
    elif settings.monitoring.outcomes_sql:
        url = os.environ.get(settings.monitoring.outcomes_sql_url_env or "", "").strip()
        if not url:
            raise CreditRiskError(f"outcomes_sql: the environment variable "
                                  f"{settings.monitoring.outcomes_sql_url_env} (the database "
                                  "URL) is not set")
        source, chunks = "outcomes_sql", read_sql(url, settings.monitoring.outcomes_sql)
    else:
        return {"source": None, "read": 0, "new": 0}
    read = new = 0
    with open_outcomes(settings) as store:
        for chunk in chunks:
            read += len(chunk)
            new += store.load(chunk)
        log.info("outcomes from %s: %d read, %d new, into %s", source, read, new,
                 store.describe())
        return {"source": source, "read": read, "new": new, "store": store.describe()}


def performance_step(settings: Settings, run_id: str, as_of: datetime | None = None) -> str:
    """Performance on matured loans: the decisions of the window [as_of - months_on_book -
    window_months, as_of - months_on_book) and the outcomes observed since its start, judged
    per model version and vintage against each version's training figures (its manifest's
    metrics). Writes performance.json (with `alert`) and performance.png; returns the JSON's
    path."""
    from credit_risk.pipeline.monitoring_plots import performance_plot
    from credit_risk.pipeline.performance import Thresholds, performance_report

    out = monitoring_dir(settings, run_id)
    makedirs(out)
    as_of = as_of or datetime.now(UTC)
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    limits = Thresholds.from_settings(settings)
    until = _months_before(as_of, limits.months_on_book)
    since = _months_before(until, settings.monitoring.performance_window_months)
    head: dict[str, Any] = {"run_id": run_id, "at": datetime.now(UTC).isoformat(),
                            "decided_since": since.isoformat(),
                            "decided_until": until.isoformat()}
    dlog = open_decision_log(settings)
    if dlog is None:
        return write_report(PerformanceReport(**head, alert=False, alerts=[], versions=[],
                                              status="no decision log"),
                            join(out, PERFORMANCE_FILE))
    try:
        decisions = matured_decisions(dlog, since, until)
        decisions_log = dlog.describe()
    finally:
        dlog.close()
    with open_outcomes(settings) as store:
        outcomes = pd.DataFrame(store.read(since, as_of + timedelta(days=1)),
                                columns=["application_id", "defaulted", "observed_at"])
        outcomes_store = store.describe()
    registry = registry_for(settings)  # the dataset serving serves
    training: dict[str, Any] = {}
    for version in sorted(set(decisions["model_version"].astype(str))):
        try:
            training[version] = registry.manifest(version)
        except RegistryError as exc:  # a deleted or refused version: judged without figures
            log.warning("performance: no training figures for %s: %s", version, exc)
    figures = performance_report(decisions, outcomes, as_of, training, limits)
    report = PerformanceReport(
        **head, alert=figures.alert, alerts=figures.alerts, versions=figures.versions,
        status="ok" if figures.versions else "no matured decisions with a known outcome",
        decisions_log=decisions_log, outcomes=outcomes_store, as_of=figures.as_of,
        thresholds=figures.thresholds, matured_with_outcome=figures.matured_with_outcome,
        matured_without_outcome=figures.matured_without_outcome, decisions=len(decisions),
        outcomes_read=len(outcomes), plot=PERFORMANCE_PLOT)
    write_bytes(join(out, PERFORMANCE_PLOT), performance_plot(figures))
    path = write_report(report, join(out, PERFORMANCE_FILE))
    log.info("performance: %s; alert=%s (%d alerts)", report.status, report.alert,
             len(report.alerts))
    return path
