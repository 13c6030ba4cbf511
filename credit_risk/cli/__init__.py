"""The `credit-risk` console script: the same functions the DAGs call.

`main` parses the arguments, then imports only the module of the command it runs:
`predict` (`credit_risk.cli.predict`), `models` / `keys` (`credit_risk.cli.registry`),
`decisions` (`credit_risk.cli.decisions`) and `outcomes` (`credit_risk.cli.outcomes`) need
only the serving slice (config, errors, spec, scoring, registry) and so work in an install of
the serving extra (on PostgreSQL they also need the postgres extra); `train`, `generate-data`,
`validate` and `drift` (`credit_risk.cli.pipeline`), `spec` (`credit_risk.cli.spec`) and
`performance` need the pipeline extra.
The import-linter contracts in pyproject.toml keep it so.

Exit codes (`credit_risk.cli.usage`): 0 the work was done; 1 it failed (a `CreditRiskError`:
bad input, data, configuration or artifact; the message on stderr); 2 the command line is wrong
(argparse, or a `UsageError`). Anything else is a bug and shows its traceback.
`-v`/`-q` are accepted before or after any subcommand; they add up (`-v -v` is `-vv`).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from credit_risk.config import Settings

# Top-level modules of the `pipeline` extra: a command that needs one in an install without
# it is told so (not a traceback).
PIPELINE_EXTRA = frozenset({"pandas", "pyarrow", "scipy", "sklearn", "imblearn", "joblib",
                            "airflow", "great_expectations", "evidently", "matplotlib",
                            "markdown_it"})
# The package's pipeline side, which the serving image does not hold (Dockerfile).
PIPELINE_MODULES = ("credit_risk.cli.pipeline", "credit_risk.pipeline", "credit_risk.validation",
                    "credit_risk.datasets", "credit_risk.cli.spec")


# Loggers of libraries that flood a terminal at INFO (Great Expectations, Evidently, Alembic...):
# errors only, unless -vv. `py.warnings`: Python warnings (deprecations inside those libraries).
THIRD_PARTY = ("great_expectations", "evidently", "alembic", "numexpr", "matplotlib", "PIL",
               "urllib3", "botocore", "s3fs", "fsspec", "sqlalchemy", "airflow", "py.warnings")


class Parser(argparse.ArgumentParser):
    """A parser whose every subcommand takes -v/-q too: each level counts into its own dest
    (a subcommand's namespace replaces its parent's values), `verbosity` adds them up."""

    def __init__(self, *args: Any, depth: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.depth = depth
        default = 0 if depth == 0 else argparse.SUPPRESS
        self.add_argument("-v", "--verbose", action="count", default=default,
                          dest=f"verbose_{depth}",
                          help="more output: -v the steps (INFO), -vv debug and other "
                               "libraries' logs")
        self.add_argument("-q", "--quiet", action="count", default=default,
                          dest=f"quiet_{depth}", help="less output: no progress, errors only")

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault("parser_class", functools.partial(Parser, depth=self.depth + 1))
        return super().add_subparsers(**kwargs)


def verbosity(args: argparse.Namespace) -> int:
    """The -v count minus the -q count, wherever on the command line they were given."""
    counts = vars(args)
    return sum(n for k, n in counts.items() if k.startswith("verbose_")) - \
        sum(n for k, n in counts.items() if k.startswith("quiet_"))


def configure_logging(level: int) -> None:
    """Our logs at WARNING (-q: ERROR, -v: INFO, -vv: DEBUG); other libraries' at ERROR
    unless -vv."""
    ours = logging.ERROR if level < 0 else logging.WARNING if level == 0 else \
        logging.INFO if level == 1 else logging.DEBUG
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # once
    logging.getLogger().setLevel(ours)
    logging.captureWarnings(True)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.NOTSET if level >= 2 else logging.ERROR)


def positive_int(text: str) -> int:
    """An argparse type: a whole number above 0 (anything else is a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number above 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="credit-risk", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("generate-data", help="write the synthetic source tables")
    g.add_argument("--customers", type=positive_int, default=None)
    g.add_argument("--seed", type=int, default=None, help="default: CREDIT_RISK_DATA_SEED")
    g.add_argument("--shift", action="store_true", help="a drifted batch")
    g.add_argument("--spec", default=None)
    g.add_argument("--out", default=None, help="folder (default: DATA_DIR/<dataset>)")
    g.add_argument("--applications", default=None, metavar="CSV",
                   help="write one CSV of joined applications (no target), e.g. for predict")
    g.add_argument("--outcomes", default=None, metavar="CSV",
                   help="write the observed outcomes of the same loans (application_id, "
                        "defaulted, observed_at), e.g. for performance monitoring")
    g.set_defaults(command="pipeline:cmd_generate")

    t = sub.add_parser("train", help="run the whole pipeline and print the comparison")
    t.add_argument("--spec", default=None, help="built-in spec name or YAML path")
    t.add_argument("--models", default=None, help="comma-separated subset of models")
    t.add_argument("--run-id", default=None)
    t.set_defaults(command="pipeline:cmd_train")

    m = sub.add_parser("models", help="the model registry")
    msub = m.add_subparsers(dest="models_cmd", required=True)
    listing = msub.add_parser("list", help="versions, grouped by dataset, with their aliases")
    show = msub.add_parser("show", help="a version: what it is, its metrics, its inputs")
    show.add_argument("version")
    for cmd in (listing, show):
        cmd.add_argument("--json", action="store_true",
                         help="JSON for machines (default: tables for people)")
    card = msub.add_parser("scorecard", help="a scorecard version's points table: field, bin, "
                           "points, count, event rate, WoE, IV")
    card.add_argument("version")
    card.add_argument("--csv", action="store_true",
                      help="the version's scorecard.csv as it is (full precision)")
    promote = msub.add_parser("promote", help="make a version the champion of its dataset")
    promote.add_argument("version")
    rollback = msub.add_parser("rollback", help="swap a dataset's champion and previous")
    for cmd in (promote, rollback):
        cmd.add_argument("--reason", required=True)
        cmd.add_argument("--by", default=None, help="who (default: the OS user)")
    history = msub.add_parser("history")
    for cmd, text in ((listing, "only this dataset"), (history, "only this dataset"),
                      (promote, "the version's dataset, as a check (refused if it is not)"),
                      (rollback, "the dataset (default: CREDIT_RISK_DATASET, else the "
                                 "registry's only dataset)")):
        cmd.add_argument("--dataset", default=None, help=text)
    verify = msub.add_parser("verify", help="check a version's files and signature, and the "
                             "alias chain's records; exit 1 with the reason when one fails")
    verify.add_argument("version", nargs="?", default=None,
                        help="a version (default: only the alias chain)")
    verify.add_argument("--trusted-key", action="append", default=None, metavar="PEM",
                        help="a trusted public key (repeatable; default: "
                             "CREDIT_RISK_TRUSTED_KEYS)")
    m.set_defaults(command="registry:cmd_models")

    k = sub.add_parser("keys", help="manifest signing keys")
    ksub = k.add_subparsers(dest="keys_cmd", required=True)
    kgen = ksub.add_parser("generate", help="write a new Ed25519 keypair")
    kgen.add_argument("--out", required=True, help="folder for signing_key.pem (mode 0600) "
                      "and signing_key.pub.pem")
    k.set_defaults(command="registry:cmd_keys")

    d = sub.add_parser("drift", help="recent traffic vs the champion's training data")
    d.add_argument("--window-days", type=positive_float, default=None)
    d.set_defaults(command="pipeline:cmd_drift")

    pr = sub.add_parser("predict", help="score a file of applications (CSV or Parquet); exit 0 "
                        "all rows scored, 3 some not, 4 none (see OUTPUT.errors.csv)")
    pr.add_argument("input", help="a CSV or Parquet (.parquet, .pq) file")
    pr.add_argument("-o", "--output", default="-",
                    help="CSV or Parquet (by its extension); default: CSV on stdout")
    pr.add_argument("--log", action="store_true", help="record the decisions in the decision "
                    "log (default: CREDIT_RISK_PREDICT_LOG, else not)")
    pr.add_argument("--chunk-rows", type=positive_int, default=None, metavar="N",
                    help="rows read, scored and written at a time (default: 100,000)")
    pr.add_argument("--version", default=None, help="default: the champion")
    pr.add_argument("--dataset", default=None, help="whose champion (default: "
                    "CREDIT_RISK_DATASET, else the registry's only dataset, else the spec's)")
    pr.set_defaults(command="predict:cmd_predict")

    dl = sub.add_parser("decisions", help="the decision log: migrate, prune, status")
    dsub = dl.add_subparsers(dest="decisions_cmd", required=True)
    dsub.add_parser("migrate", help="create or upgrade the database schema (PostgreSQL)")
    prune = dsub.add_parser("prune", help="delete decisions older than the retention")
    prune.add_argument("--days", type=positive_float, default=None,
                       help="default: CREDIT_RISK_DECISION_RETENTION_DAYS")
    dsub.add_parser("status", help="where decisions go, whether they can be written, how many")
    dl.set_defaults(command="decisions:cmd_decisions")

    oc = sub.add_parser("outcomes", help="observed outcomes: load (CSV or SQL), migrate, status")
    osub = oc.add_subparsers(dest="outcomes_cmd", required=True)
    load = osub.add_parser("load", help="store outcomes (application_id, defaulted, "
                           "observed_at); loading them again stores nothing new")
    load.add_argument("file", nargs="?", default=None, help="a CSV file")
    load.add_argument("--sql", default=None, help="a query giving the same columns")
    load.add_argument("--url-env", default=None, metavar="VAR",
                      help="the environment variable with the query's database URL")
    osub.add_parser("migrate", help="create or upgrade the database schema (PostgreSQL)")
    osub.add_parser("status", help="where outcomes are kept and how many")
    oc.set_defaults(command="outcomes:cmd_outcomes")

    pf = sub.add_parser("performance", help="performance on matured loans vs training figures")
    pf.add_argument("--as-of", default=None, metavar="DATE", help="default: now")
    pf.add_argument("--run-id", default=None, help="the monitoring run folder's name")
    pf.set_defaults(command="outcomes:cmd_performance")

    sp = sub.add_parser("spec", help="dataset specs: draft one from a file, check a file")
    ssub = sp.add_subparsers(dest="spec_cmd", required=True)
    si = ssub.add_parser("init", help="write a draft spec from a CSV or Parquet file")
    si.add_argument("data", help="the data file (CSV or Parquet), one row per application")
    si.add_argument("--target", required=True, help="the column of the outcome (default or not)")
    si.add_argument("--out", default=None, metavar="SPEC.yaml", help="default: standard output")
    si.add_argument("--name", default=None, help="the dataset's name (default: the file's)")
    si.add_argument("--force", action="store_true", help="replace --out if it exists")
    sc = ssub.add_parser("check", help="what in a data file does not fit a spec; exit 0 when "
                         "it fits, 1 when it does not, 2 on a usage error")
    sc.add_argument("spec", help="built-in spec name or YAML path")
    sc.add_argument("data", help="the data file (CSV or Parquet)")
    sp.set_defaults(command="spec:cmd_spec")

    v = sub.add_parser("validate", help="run the data validation gate on a dataset")
    v.add_argument("--spec", default=None, help="built-in spec name or YAML path")
    v.add_argument("--data-dir", default=None,
                   help="DATA_DIR (tables in DIR/<dataset>/) or the dataset's own folder")
    v.add_argument("--out", default=None, help="result folder (default: RUNS_DIR/validate-<time>)")
    v.add_argument("--export-suites", action="store_true",
                   help="write the spec's suites and checkpoints into the GX folder, then exit")
    v.set_defaults(command="pipeline:cmd_validate")
    return p



def _settings() -> Settings:
    """The settings from the environment; invalid values are a user error, not a bug."""
    from pydantic import ValidationError

    from credit_risk.config import Settings
    from credit_risk.errors import CreditRiskError

    try:
        return Settings()
    except ValidationError as exc:
        raise CreditRiskError(f"invalid configuration (CREDIT_RISK_* variables): {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # a usage error exits 2 here
    level = verbosity(args)
    configure_logging(level)
    from credit_risk.cli import progress, usage
    from credit_risk.errors import CreditRiskError

    progress.set_verbosity(level)
    module, name = args.command.split(":")
    try:
        command = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        return int(command(args, _settings()))
    except usage.UsageError as exc:
        print(f"credit-risk {args.cmd}: error: {exc}\n(see credit-risk {args.cmd} --help)",
              file=sys.stderr)
        return usage.USAGE
    except CreditRiskError as exc:
        print(f"credit-risk: error: {exc}", file=sys.stderr)
        return usage.FAILED
    except ModuleNotFoundError as exc:  # e.g. `train` in an install of the serving extra
        missing = exc.name or ""
        if missing.partition(".")[0] not in PIPELINE_EXTRA and not any(
                missing == m or missing.startswith(f"{m}.") for m in PIPELINE_MODULES):
            raise
        extra = "batch" if args.cmd == "predict" and missing.startswith("pyarrow") else "pipeline"
        print(f"credit-risk: error: {args.cmd} needs the {extra} extra (no module named "
              f"{exc.name!r}): pip install -c constraints.txt 'credit-risk[{extra}]'",
              file=sys.stderr)
        return usage.FAILED

