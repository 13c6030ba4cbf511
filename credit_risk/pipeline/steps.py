"""The pipeline steps, each taking and returning paths or ids (the DAG and the CLI call these)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from typing import Any

import joblib
import numpy as np
import pandas as pd

from credit_risk.config import Settings
from credit_risk.pipeline.alternatives import search_alternatives, should_search, spec_without
from credit_risk.pipeline.bundle import check_plan, compile_bundle, frame_records
from credit_risk.pipeline.decision_policy import (
    OPERATING_PNG,
    check_policy,
    dataset_policy,
    decision_policy_report,
    describe_policy,
    operating_png,
)
from credit_risk.pipeline.evaluate import classification_metrics
from credit_risk.pipeline.fairness import fairness_report
from credit_risk.pipeline.gate import gate_thresholds, rejection_reasons
from credit_risk.pipeline.grading import pd_summary
from credit_risk.pipeline.ingest import assemble, frame_fingerprint, ingest, load_snapshot
from credit_risk.pipeline.model_card import markdown_to_html, model_card_markdown
from credit_risk.pipeline.monitoring import REFERENCE_FILE, reference_sample
from credit_risk.pipeline.reports import comparison_table, reliability_png, reliability_table
from credit_risk.pipeline.run_paths import (
    RunPaths,
    join,
    local_or_url,
    makedirs,
    open_file,
    read_bytes,
    read_text,
    write_bytes,
)
from credit_risk.pipeline.run_reports import (
    CandidateMetrics,
    CandidateResult,
    Champion,
    ComparableChampion,
    Comparison,
    Fairness,
    IncomparableChampion,
    Reliability,
    SplitRecord,
    SplitRule,
    read_report,
    write_report,
)
from credit_risk.pipeline.scorecard_bundle import scorecard_artifacts
from credit_risk.pipeline.train import Candidate, split, train_candidate
from credit_risk.pipeline.validate import run_validation_files, validate_snapshot
from credit_risk.pipeline.validation_report.build import report_files, validation_report
from credit_risk.pipeline.validation_report.calibration import master_scale_grades
from credit_risk.pipeline.validation_report.card import validation_markdown
from credit_risk.pipeline.versions import code_version, library_versions
from credit_risk.registry import MODEL_FILE, Registry, RegistryError
from credit_risk.registry.champion import load_champion, registry_for
from credit_risk.scoring.scorer import Scorer, ScoreScaling
from credit_risk.spec.dataset import DatasetSpec, load_spec
from credit_risk.spec.fields import input_fields

log = logging.getLogger(__name__)
TARGET = "__target__"


def ingest_step(settings: Settings, run_id: str, spec_name: str | None = None) -> str:
    """Snapshot the source tables for this run; return the snapshot manifest path."""
    spec = load_spec(spec_name or settings.data.spec)
    out = RunPaths.for_run(settings, run_id).raw  # a missing source is an error, not generated
    return str(ingest(spec, settings.data.dir, out))


def validate_step(settings: Settings, snapshot: str, spec_name: str | None = None) -> str:
    """Great Expectations on the snapshot; return the path of the validation result.

    Writes <run>/validation/ (validation.json, Data Docs); raises DataValidationError, naming
    the failed expectations, columns and example values, when a blocking expectation fails.
    """
    spec = load_spec(spec_name or settings.data.spec)
    report = validate_snapshot(spec, local_or_url(snapshot), settings)
    if not report.success:
        log.error("%s", report.message())
    report.raise_for_failures()
    return str(report.path)


def prepare_step(settings: Settings, snapshot: str, spec_name: str | None = None) -> str:
    """Join the tables, split once into train and test; return the folder holding both."""
    spec = load_spec(spec_name or settings.data.spec)
    manifest, frames = load_snapshot(snapshot)
    df = assemble(spec, frames)
    y = np.asarray(spec.is_default(df[spec.target.column]), dtype=int)
    df = df.drop(columns=[spec.target.column])
    key = spec.split_column()
    training = settings.training
    X_train, X_test, y_train, y_test = split(df, y, training.test_size, training.seed, key)
    out = RunPaths.of(snapshot).split
    makedirs(out)
    X_train.assign(**{TARGET: y_train}).to_parquet(join(out, "train.parquet"), index=False)
    X_test.assign(**{TARGET: y_test}).to_parquet(join(out, "test.parquet"), index=False)
    info = SplitRecord(
        dataset=spec.name, spec=spec.model_dump(mode="json"),
        data_fingerprint=manifest["fingerprint"],
        train_rows=len(y_train), test_rows=len(y_test),
        train_default_rate=float(y_train.mean()), test_default_rate=float(y_test.mean()),
        split_rule=SplitRule(key=key, seed=settings.training.seed,
                             test_size=settings.training.test_size),
        test_fingerprint=frame_fingerprint(X_test))
    write_report(info, join(out, "split.json"))
    return str(out)


def load_part(split_dir: str, part: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The features and labels of the split's "train" or "test" part."""
    df = pd.read_parquet(join(local_or_url(split_dir), f"{part}.parquet"))
    return df.drop(columns=[TARGET]), df[TARGET].to_numpy(dtype=int)


def split_spec(split_dir: str) -> tuple[DatasetSpec, SplitRecord]:
    """The dataset spec the split was made with, and the split's record (split.json)."""
    info = read_report(SplitRecord, join(local_or_url(split_dir), "split.json"))
    return DatasetSpec.model_validate(info.spec), info


def train_step(settings: Settings, split_dir: str, model_name: str) -> str:
    """Tune, fit and calibrate one candidate on the training part; return its file."""
    spec, _ = split_spec(split_dir)
    settings = dataset_policy(settings, spec)
    check_policy(settings.policy, spec)  # before the training, not after it
    X, y = load_part(split_dir, "train")
    candidate = train_candidate(model_name, X, y, spec, settings)
    run = RunPaths.of(split_dir)
    path = run.candidate(model_name)
    makedirs(run.candidates)
    with open_file(path, "wb") as fh:
        joblib.dump(candidate, fh)
    return str(path)


def _load_candidate(path: str) -> Candidate:
    """A fitted candidate of this run (a pickle the run itself wrote; never from a registry)."""
    with open_file(local_or_url(path), "rb") as fh:
        candidate: Candidate = joblib.load(fh)
    return candidate


def champion_on_test_set(settings: Settings, spec: DatasetSpec, info: SplitRecord,
                         X: pd.DataFrame, y: np.ndarray) -> Champion | None:
    """The metrics on this test set of the current champion of the spec's dataset (None when
    that dataset has none: the candidate stands on its own merits), or why it cannot be
    compared: it must never have trained on these test rows (same split rule; same data if the
    split is random)."""
    registry = Registry.from_settings(settings)
    try:
        version = registry.alias_version("champion", spec.name)  # its own dataset's only
    except RegistryError as exc:  # a refused alias record, a dataset name that is a path
        log.warning("the champion of %r cannot be read: %s", spec.name, exc)
        return IncomparableChampion(version=None, comparable=False, note=str(exc))
    if version is None:
        return None
    try:
        scorer = Scorer.load(registry, version)  # verified, pure data: never a pickle
        manifest = scorer.manifest
        if manifest.get("dataset") != spec.name:
            raise ValueError(f"it serves another dataset, {manifest.get('dataset')!r}")
        rule = info.split_rule
        if manifest.get("split_rule") != rule.model_dump():
            raise ValueError(f"it was split by another rule, {manifest.get('split_rule')}, so "
                             "it may have trained on this test set")
        if rule.key is None and manifest["data_fingerprint"] != info.data_fingerprint:
            raise ValueError("the data changed and the split is random, so it may have trained "
                             "on this test set")
        pd_ = scorer.plan.predict_records(frame_records(X))
    except Exception as exc:  # any failure means "not comparable", never a crash
        log.warning("champion %s cannot be compared: %s", version, exc)
        return IncomparableChampion(version=version, comparable=False, note=str(exc))
    return ComparableChampion(version=version, comparable=True,
                              **classification_metrics(y, pd_, manifest["threshold"]))


def evaluate_step(settings: Settings, split_dir: str, candidate_paths: list[str]) -> str:
    """Every candidate and the champion on the same untouched test set; the gate's decision."""
    spec, info = split_spec(split_dir)
    settings = dataset_policy(settings, spec)
    X, y = load_part(split_dir, "test")
    run = RunPaths.of(split_dir)
    pds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    loaded = {c.name: c for c in map(_load_candidate, candidate_paths)}
    rows = [_tested(c, path, X, y, pds) for c, path in zip(loaded.values(), candidate_paths,
                                                             strict=True)]
    best = max(rows, key=lambda r: r.cv_roc_auc)
    champion = champion_on_test_set(settings, spec, info, X, y)
    limits = gate_thresholds(settings, spec)

    def judge(best: CandidateResult) -> tuple[Fairness, list[str]]:
        fairness = fairness_report(X, pds[best.model][0], best.threshold, spec,
                                   limits.min_approval_ratio,
                                   settings.gate.fairness_min_group_size)
        return fairness, rejection_reasons(best.test, champion, fairness, limits)

    fairness, reasons = judge(best)
    X_train, y_train = load_part(split_dir, "train")
    alternatives, trigger = None, should_search(settings, fairness)
    if trigger:  # the least discriminatory alternative
        alternatives, saved = search_alternatives(settings, spec, trigger, loaded, best.model,
                                                  (X_train, y_train), (X, y), limits, run)
        if alternatives.chosen:
            loaded[alternatives.chosen] = _load_candidate(saved[alternatives.chosen])
            best = _tested(loaded[alternatives.chosen], saved[alternatives.chosen], X, y, pds)
            rows.append(best)
            fairness, reasons = judge(best)
        elif trigger != "always":
            reasons.append(f"least discriminatory alternative: {alternatives.outcome}")
    pd_, raw_pd = pds[best.model]
    oof = loaded[best.model].oof
    policy = decision_policy_report(
        settings.policy, spec, best.threshold,
        (X_train, y_train, oof) if oof is not None and len(oof) == len(y_train) else None,
        (X, y, pd_))
    write_bytes(join(run.root, OPERATING_PNG), operating_png(
        y, pd_, best.threshold, f"{best.model} on the test set ({len(y)} rows)"))
    write_bytes(run.reliability, reliability_png(
        y, {f"{best.model} calibrated": pd_, f"{best.model} uncalibrated": raw_pd},
        f"Reliability on the test set ({len(y)} rows)"))
    comparison = Comparison(
        dataset=spec.name, data_fingerprint=info.data_fingerprint, test_rows=info.test_rows,
        split=info.info(), candidates=rows, selected=best.model, champion=champion,
        fairness=fairness, gate=limits,
        reliability=Reliability(calibrated=reliability_table(y, pd_),
                                uncalibrated=reliability_table(y, raw_pd)),
        approved=not reasons, rejection_reasons=reasons, policy=policy,
        alternatives=alternatives)
    out = write_report(comparison, run.comparison)
    log.info("candidates on the same %d-row test set:\n%s", len(y), comparison_table(rows))
    if isinstance(champion, ComparableChampion):
        log.info("champion %s on this test set: roc_auc=%.4f ece=%.4f", champion.version,
                 champion.roc_auc, champion.ece)
    log.info("gate: %s", "approved" if not reasons else "rejected: " + "; ".join(reasons))
    return out


def _tested(c: Candidate, path: str, X: pd.DataFrame, y: np.ndarray,
            pds: dict[str, tuple[np.ndarray, np.ndarray]]) -> CandidateResult:
    """A candidate's figures on the test set; its calibrated and raw PDs kept in `pds`."""
    pd_, raw_pd = c.model.predict_pd(X), c.model.predict_raw(X)
    raw = classification_metrics(y, raw_pd, c.threshold)
    metrics = CandidateMetrics(**classification_metrics(y, pd_, c.threshold),
                               ece_uncalibrated=raw["ece"], brier_uncalibrated=raw["brier"])
    pds[c.name] = (pd_, raw_pd)
    return CandidateResult(model=c.name, path=path, cv_roc_auc=c.cv_roc_auc, params=c.params,
                           validation=c.validation, search=c.search, fit_seconds=c.fit_seconds,
                           threshold=c.threshold, test=metrics)


def publish_step(settings: Settings, comparison_path: str) -> str:
    """Publish the selected candidate as a new version; promote it if the gate approved it."""
    comparison = read_report(Comparison, comparison_path)
    selected = comparison.selected_candidate
    candidate: Candidate = _load_candidate(selected.path)
    run = RunPaths.of(comparison_path)
    split_dir = str(run.split)
    spec, info = split_spec(split_dir)
    settings = dataset_policy(settings, spec)
    spec = spec_without(spec, candidate.params.get("without", []))  # an alternative's fields
    buf = io.BytesIO()
    joblib.dump(candidate.model, buf)
    scaling = ScoreScaling(settings.score.base, settings.score.base_odds, settings.score.pdo,
                           settings.score.min, settings.score.max)
    registry = Registry.from_settings(settings)
    existing = registry.find("run", run.name)  # parsed and, with trusted keys, signed
    if existing:
        try:
            registry.verify(existing)
        except RegistryError as exc:
            log.warning("run %s: version %s names it but does not verify (%s): publishing a "
                        "new version", run.name, existing, exc)
            existing = None
    if existing:  # a retried or cleared publish task: the run's version exists already
        # Aliases are left alone: an operator may have rolled back since the first attempt.
        log.info("run %s already published %s; aliases unchanged", run.name, existing)
        if comparison.approved and existing not in {h["version"] for h in registry.history()}:
            log.warning("approved version %s was never promoted (the first attempt stopped "
                        "before it): promote it with `credit-risk models promote`", existing)
        return existing
    if comparison.approved:
        registry.check_can_change_aliases()  # a promote that would fail writes nothing first
    version = registry.new_version_id()
    inputs = input_fields(spec, candidate.model.features)
    manifest: dict[str, Any] = {
        "version": version,
        "run": run.name,
        "dataset": spec.name,
        "spec": spec.model_dump(mode="json"),
        "data_fingerprint": comparison.data_fingerprint,
        "split_rule": info.split_rule.model_dump(),
        "model": candidate.name,
        "params": candidate.params,
        "threshold": candidate.threshold,
        "threshold_policy": describe_policy(settings.policy),
        "score_scaling": scaling.__dict__,
        "metrics": selected.test.to_dict(),
        "cv_roc_auc": candidate.cv_roc_auc,
        "comparison": [r.summary().to_dict() for r in comparison.candidates],
        "champion_at_training": comparison.champion.to_dict() if comparison.champion else None,
        "approved": comparison.approved,
        "rejection_reasons": comparison.rejection_reasons,
        "status": "approved" if comparison.approved else "rejected",
        "fairness": comparison.fairness.to_dict(),
        "gate": comparison.gate.to_dict(),
        "inputs": inputs,
        "features": list(candidate.model.features.feature_names_out_),
        "code_version": code_version(),
        "libraries": library_versions(),
    }
    validation_files, manifest["validation"] = run_validation_files(run.root)  # refuses unvalidated
    section, scorecard_files = scorecard_artifacts(candidate.model, scaling, settings.scorecard)
    X_train, _ = load_part(split_dir, "train")
    X_test, y_test = load_part(split_dir, "test")
    manifest |= pd_summary(candidate.model, X_test, y_test)  # calibration, grades on test
    report = validation_report(candidate.name, candidate.model, spec, X_train, X_test, y_test,
                               settings, grades=master_scale_grades(candidate.model.master_scale))
    card = model_card_markdown(manifest, comparison,
                               [s for s in (section, validation_markdown(report)) if s])
    check_plan(candidate.model, X_test)  # the pure-data plan must give the pipeline's PDs
    files = {**compile_bundle(candidate.model), MODEL_FILE: buf.getvalue(),
             "comparison.json": read_bytes(run.comparison),
             "reliability.png": read_bytes(run.reliability),
             **_if_present(run, OPERATING_PNG),
             "model_card.md": card.encode(), "model_card.html": markdown_to_html(card).encode(),
             **report_files(report),
             REFERENCE_FILE: reference_sample(X_train, inputs,
                                              seed=settings.training.seed),
             **validation_files, **scorecard_files}
    registry.publish(files, manifest, version)
    if comparison.approved:
        registry.promote(version, "approved by the training gate", by="credit-risk pipeline")
    else:
        log.warning("version %s published but not promoted: %s", version,
                    "; ".join(comparison.rejection_reasons))
    return version


def _if_present(run: RunPaths[Any], name: str) -> dict[str, bytes]:
    """{name: bytes} of a file of the run folder, or nothing (a run from before it)."""
    try:
        return {name: read_bytes(join(run.root, name))}
    except FileNotFoundError:
        return {}


def run_all(settings: Settings, run_id: str, spec_name: str | None = None,
            progress: Callable[[int, int | None], None] | None = None) -> str:
    """The whole pipeline in-process (what `credit-risk train` runs); return the version.
    `progress(done, total)` is told each candidate trained."""
    log.info("run %s: ingest", run_id)
    snapshot = ingest_step(settings, run_id, spec_name)
    log.info("run %s: validate", run_id)
    validate_step(settings, snapshot, spec_name)
    log.info("run %s: prepare the split", run_id)
    split_dir = prepare_step(settings, snapshot, spec_name)
    models = settings.training.models
    paths = []
    for model in models:
        log.info("run %s: train %s", run_id, model)
        paths.append(train_step(settings, split_dir, model))
        if progress is not None:
            progress(len(paths), len(models))
    log.info("run %s: evaluate and publish", run_id)
    return publish_step(settings, evaluate_step(settings, split_dir, paths))


def load_model(registry: Registry, version: str) -> tuple[Any, dict[str, Any]]:
    """The training-side pipeline object of a version (a pickle: for analysis, never for
    serving) and its manifest, loaded only after every file and the signature are verified."""
    manifest = registry.verify(version)
    data = registry.read_file(version, MODEL_FILE, manifest)
    return joblib.load(io.BytesIO(data)), manifest


def load_scorer(settings: Settings, version: str | None = None,
                dataset: str | None = None) -> Scorer:
    """A version's Scorer; by default the champion of `dataset` (default: as serving chooses)."""
    return load_champion(registry_for(settings), version, dataset)



def data_changed_since_champion(settings: Settings, snapshot: str) -> bool:
    """False when the champion was trained on exactly this data (nothing new to learn)."""
    snap = json.loads(read_text(snapshot))
    fingerprint, dataset = snap["fingerprint"], snap.get("dataset")
    registry = Registry.from_settings(settings)
    try:  # the champion's manifest as it is trusted: parsed and, with keys, signed
        version = registry.alias_version("champion", dataset)  # of the snapshot's dataset
        if version is None:
            return True
        manifest = registry.manifest(version)
        registry.check_signature(version, manifest)
    except RegistryError as exc:
        log.warning("cannot read the champion's manifest (%s): treating the data as new", exc)
        return True
    same = manifest.get("data_fingerprint") == fingerprint
    if same:
        log.info("champion %s was trained on this exact data; skipping (use force)", version)
    return not same
