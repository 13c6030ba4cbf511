"""One candidate's search as separate tasks: `plan`, one `trial` task per trial, `finish`.

The trial task bodies of the distributed benchmark's DAG (credit_risk_training_trials.py, next
to this file). What `train_step` does in one process, cut where the work is independent, so
that a DAG can map the trials over workers (docs/scaling.md, "When one model's search
dominates"). Files between
the tasks, in the run folder (a local folder or an fsspec URL, like every step's)::

    candidates/<model>/plan.joblib        plan: the shared search, the prepared CV folds,
                                          the trials' params, the training labels
    candidates/<model>/trials/<n>.joblib  trial n: its out-of-fold PDs, CV ROC-AUC, trees
    candidates/<model>.joblib             finish: the Candidate, as train_step writes it

The statistics are train_candidate's with `search_strategy="random"`: the same seeded folds
(features fitted per fold, SMOTE on the fold's training rows only), the same trials from the
same ParameterSampler, the same choice, refit, calibration and threshold. One rung: every trial
on all training rows (successive halving would need a mapped level per rung; this mode does
not do it, whatever `search_strategy` says), and no time budget (the trials run at once).
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from credit_risk.config import Settings
from credit_risk.pipeline.run_paths import RunPaths, join, makedirs, open_file
from credit_risk.pipeline.steps import load_part, split_spec
from credit_risk.pipeline.train import (
    Fold,
    Search,
    Trial,
    finish_search,
    prepare_folds,
    ranked,
    run_trial,
    search_setup,
)

log = logging.getLogger(__name__)


@dataclass
class _Plan:
    search: Search
    folds: list[Fold]
    trials: list[dict[str, Any]]
    y: np.ndarray


def _folder(split_dir: str, model_name: str) -> Path | str:
    return join(RunPaths.of(split_dir).candidates, model_name)


def _trial_file(split_dir: str, model_name: str, number: int) -> Path | str:
    return join(_folder(split_dir, model_name), "trials", f"{number}.joblib")


def _dump(obj: Any, path: Path | str) -> None:
    with open_file(path, "wb") as fh:
        joblib.dump(obj, fh)


def _load(path: Path | str) -> Any:  # files this run wrote, never from elsewhere
    with open_file(path, "rb") as fh:
        return joblib.load(fh)


def plan(settings: Settings, split_dir: str, model_name: str) -> list[int]:
    """Prepare the CV folds once and draw the trials; return the trial numbers to map over."""
    spec, _ = split_spec(split_dir)
    X, y = load_part(split_dir, "train")
    search, trials = search_setup(model_name, X, spec, settings)
    folds = prepare_folds(search, X, y)
    folder = _folder(split_dir, model_name)
    makedirs(join(folder, "trials"))
    _dump(_Plan(search, folds, trials, y), join(folder, "plan.joblib"))
    log.info("%s: %d folds prepared in %.1fs, %d trials", model_name, len(folds),
             search.timings["folds"], len(trials))
    return list(range(len(trials)))


def trial(split_dir: str, model_name: str, number: int, threads: int | None = None) -> str:
    """Fit trial `number` on every prepared fold (its model with `threads` threads; None: the
    model's own setting); write its out-of-fold PDs and CV ROC-AUC, return that file."""
    p: _Plan = _load(join(_folder(split_dir, model_name), "plan.joblib"))
    if threads is not None:  # the head is cloned from here; the params stay the sampler's
        p.search.pipe.steps[-1][1].set_params(n_jobs=threads)
    since = time.perf_counter()
    result = run_trial(p.search, p.folds, p.y, p.trials[number])
    seconds = time.perf_counter() - since
    path = _trial_file(split_dir, model_name, number)
    _dump({"trial": result, "seconds": seconds, "host": socket.gethostname()}, path)
    log.info("%s trial %d %s: cv_roc_auc=%.4f in %.1fs", model_name, number, result.params,
             result.auc, seconds)
    return str(path)


def finish(split_dir: str, model_name: str) -> str:
    """The best trial refitted on all training rows, calibrated, its threshold: the Candidate
    file that train_step writes (fit_seconds: the folds', the trials' and this task's seconds
    added up)."""
    p: _Plan = _load(join(_folder(split_dir, model_name), "plan.joblib"))
    done = [_load(_trial_file(split_dir, model_name, n)) for n in range(len(p.trials))]
    X, y = load_part(split_dir, "train")
    search = p.search
    search.timings["trials"] = sum(d["seconds"] for d in done)
    start = time.perf_counter() - sum(search.timings.values())
    records: list[dict[str, Any]] = []
    results: list[Trial] = ranked(model_name, [d["trial"] for d in done], len(y), 0, records)
    candidate = finish_search(model_name, search, X, y, results[0], records, start)
    run = RunPaths.of(split_dir)
    path = run.candidate(model_name)
    _dump(candidate, path)
    return str(path)
