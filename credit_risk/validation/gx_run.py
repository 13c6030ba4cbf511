"""Great Expectations plumbing: suites, validation definitions, checkpoints, Data Docs.

GX is imported lazily (it takes seconds) and with its usage statistics switched off.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.spec.dataset import SpecError
from credit_risk.validation.suites import NUMBER_RE, Check, Suites

DATASOURCE = "credit_risk"
BATCH_DEFINITION = "whole_dataframe"
DOCS_SITE = "run_data_docs"
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
_BIG_STATIC_FILES = ("glossary_scroller.gif", "validation_failed_unexpected_values.gif")


def _gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    _register_number_regex()
    return gx


def number_regex_condition(column: pd.Series, regex: str) -> pd.Series | None:
    """Whether each (non-null) value matches NUMBER_RE, answered without text when the column
    has a NumPy integer or float dtype: an integer's text always matches, a float's when it is
    finite. None for any other regex or dtype (then GX converts the values to text and matches
    them, about 1.5 s per million values)."""
    if regex != NUMBER_RE or not isinstance(column.dtype, np.dtype):
        return None
    if column.dtype.kind in "iu":
        return pd.Series(True, index=column.index)
    if column.dtype.kind == "f":
        return pd.Series(np.isfinite(column.to_numpy()), index=column.index)
    return None


_registered = False


def _register_number_regex() -> None:
    """GX's pandas `column_values.match_regex`, with `number_regex_condition` first: a metric
    provider of the same name replaces GX's own (its other engines and every other regex and
    dtype keep GX's code). Registered once per process."""
    global _registered
    if _registered:
        return
    import logging

    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.metrics import (
        ColumnValuesMatchRegex,
        column_condition_partial,
    )

    registry_log = logging.getLogger("great_expectations.expectations.registry")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)  # "overwriting metric_provider": that is the point
    try:
        class NumberRegex(ColumnValuesMatchRegex):
            @column_condition_partial(engine=PandasExecutionEngine)
            def _pandas(cls, column: pd.Series, regex: str, **kwargs: Any) -> pd.Series:
                fast = number_regex_condition(column, regex)
                return column.astype(str).str.contains(regex) if fast is None else fast
    finally:
        registry_log.setLevel(level)
    _registered = True


def suite_name(dataset: str, batch: str) -> str:
    return f"{dataset}.{batch}"


def to_expectation_suite(name: str, checks: list[Check]) -> Any:
    """A GX ExpectationSuite; our severity is GX's (blocking = critical), details in `meta`."""
    gx = _gx()
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )
    from great_expectations.expectations.metadata_types import FailureSeverity

    configs = [
        ExpectationConfiguration(
            type=c.type, kwargs=c.kwargs, notes=f"{c.text} (from the {c.source})",
            severity=FailureSeverity.CRITICAL if c.severity == "blocking" else
            FailureSeverity.WARNING,
            meta={"check_id": c.id, "check": c.name, "expected": c.text, "source": c.source,
                  "severity": c.severity},
        ).to_domain_obj()
        for c in checks
    ]
    suite = gx.ExpectationSuite(name=name, expectations=configs)
    if len(suite.expectations) != len(checks):
        raise SpecError(f"suite {name}: some expectations are not valid GX expectations "
                        "(check the expectation types in the validation overrides)")
    return suite


def ephemeral_context(docs_dir: Path | None = None) -> Any:
    """An in-memory context: nothing shared between runs; Data Docs go to docs_dir."""
    gx = _gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_dir is not None:
        sites[DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites=sites,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def register(context: Any, suites: Suites, batches: list[str] | None = None) -> dict[str, Any]:
    """Data asset, suite, validation definition and checkpoint per batch; the checkpoints."""
    gx = _gx()
    try:
        source = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas(DATASOURCE)
    checkpoints = {}
    for batch in batches or list(suites.checks):
        name = suite_name(suites.dataset, batch)
        asset = source.add_dataframe_asset(name)
        definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
        suite = context.suites.add(to_expectation_suite(name, suites.checks[batch]))
        vd = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=definition, suite=suite))
        checkpoints[batch] = context.checkpoints.add(
            gx.Checkpoint(name=name, validation_definitions=[vd], result_format=RESULT_FORMAT))
    return checkpoints


def run_checkpoint(checkpoint: Any, frame: pd.DataFrame,
                   parameters: dict[str, Any] | None = None) -> Any:
    """Run one batch's checkpoint on a frame; return its suite validation result."""
    # Copy-on-write: GX filters the whole frame per column expectation (`df[df[c].notnull()]`),
    # which copies every column when nothing is null; with it, that is a view (and GX cannot
    # change the caller's frame). A third of the time on a million rows.
    with pd.option_context("mode.copy_on_write", True):
        result = checkpoint.run(batch_parameters={"dataframe": frame},
                                expectation_parameters=parameters)
    return next(iter(result.run_results.values()))


def build_docs(context: Any, docs_dir: Path) -> Path:
    """Render the run's Data Docs (this context's results only); return the index page."""
    context.build_data_docs(site_names=[DOCS_SITE])
    for name in _BIG_STATIC_FILES:  # animated how-to GIFs (3 MB), not needed to read results
        (docs_dir / "static" / "images" / name).unlink(missing_ok=True)
    return docs_dir / "index.html"


def pages(docs_dir: Path, dataset: str, batches: list[str]) -> dict[str, tuple[str | None,
                                                                               str | None]]:
    """Each batch's validation result page and suite page, relative to docs_dir."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for batch in batches:
        parts = suite_name(dataset, batch).replace(".", "/")
        result = next(iter(sorted((docs_dir / "validations" / parts).glob("**/*.html"))), None)
        suite = docs_dir / "expectations" / f"{parts}.html"
        out[batch] = (str(result.relative_to(docs_dir)) if result else None,
                      str(suite.relative_to(docs_dir)) if suite.exists() else None)
    return out


def add_summary(docs_dir: Path, summary: str) -> None:
    """summary.html next to GX's index (whose list needs scripts from CDNs), linked from it."""
    (docs_dir / "summary.html").write_text(summary)
    index = docs_dir / "index.html"
    link = ('<p style="margin:1em"><a href="summary.html">Summary of this validation run '
            "(plain HTML)</a></p>")
    text = index.read_text()
    if "<body>" in text:
        index.write_text(text.replace("<body>", "<body>" + link, 1))


def zip_dir(folder: Path, target: Path) -> Path:
    """The folder as one zip file (how Data Docs are stored with a model version)."""
    archive = shutil.make_archive(str(target.with_suffix("")), "zip", root_dir=folder)
    return Path(archive)


def _stable_id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "credit-risk/" + "/".join(parts)))


def export_file_context(suites: Suites, root: Path) -> list[str]:
    """Write the dataset's suites, validation definitions and checkpoints into a GX file
    context (the committed ``great_expectations/`` folder); return the suite names."""
    gx = _gx()
    from great_expectations.checkpoint import UpdateDataDocsAction

    context = gx.get_context(mode="file", context_root_dir=str(root))
    if context.variables.analytics_enabled is not False:
        context.variables.analytics_enabled = False
        context.variables.save()
    try:
        source = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas(DATASOURCE)
    names = []
    for batch, checks in suites.checks.items():
        name = suite_name(suites.dataset, batch)
        if name in {a.name for a in source.assets}:  # kept: stable ids, small diffs
            definition = source.get_asset(name).get_batch_definition(BATCH_DEFINITION)
        else:
            definition = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(
                BATCH_DEFINITION)
        suite = to_expectation_suite(name, checks)
        suite.id = _stable_id(name)
        for expectation in suite.expectations:
            expectation.id = _stable_id(name, expectation.meta["check_id"])
        if name not in {s.name for s in context.suites.all()}:
            context.suites.add(gx.ExpectationSuite(name=name))  # an add would renew our ids
        suite = context.suites.add_or_update(suite)
        vd = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=definition, suite=suite,
                                    id=_stable_id(name, "validation_definition")))
        context.checkpoints.add_or_update(gx.Checkpoint(
            name=name, validation_definitions=[vd], result_format=RESULT_FORMAT,
            actions=[UpdateDataDocsAction(name="update_data_docs")],
            id=_stable_id(name, "checkpoint")))
        names.append(name)
    return names
