"""Dataset spec: tables, joins, target, column roles, derived features, cleaning rules."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from credit_risk.config.base import PREFIX, env
from credit_risk.config.policy import PolicySettings
from credit_risk.errors import CreditRiskError
from credit_risk.spec.binning import Binning, binning_conflict
from credit_risk.spec.codes import spec_category
from credit_risk.spec.expressions import parse_expression

SPECS_DIR = Path(__file__).parents[1] / "datasets" / "specs"


class SpecError(CreditRiskError, ValueError):
    """A dataset spec file is missing, malformed or inconsistent."""


class Role(StrEnum):
    ID = "id"
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    DATE = "date"
    TARGET = "target"
    IGNORED = "ignored"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SqlSource(Strict):
    """A table read with a SQL query from a database named by a SQLAlchemy URL.

    `url_env` names the environment variable holding the URL (credentials stay out of the spec
    file and out of the manifests it is copied into); `url` is for URLs without a password.
    """

    sql: str = Field(min_length=1)
    url: str | None = None  # e.g. postgresql+psycopg://reader@db.internal:5432/lending
    url_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    chunksize: int = Field(50_000, ge=1)  # rows fetched per round trip (a server-side cursor)

    @model_validator(mode="after")
    def _one_url(self) -> SqlSource:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("a SQL source needs exactly one of `url` and `url_env`")
        if self.url is not None and _has_password(self.url):
            raise ValueError("the `url` of a SQL source holds a password: put the URL in an "
                             "environment variable and name it in `url_env`")
        return self

    def describe(self) -> str:
        """Where the rows come from, without credentials (for manifests and messages)."""
        return f"sql:${self.url_env}" if self.url_env else f"sql:{self.url}"


def _has_password(url: str) -> bool:
    """Whether a URL's authority has `user:password@` (no SQLAlchemy needed to tell)."""
    _, sep, rest = url.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    return bool(sep) and "@" in netloc and ":" in netloc.rpartition("@")[0]


class Table(Strict):
    # A file: a path relative to the data dir, an absolute path, an fsspec URL (s3://...) or
    # builtin:<file>; or a SQL query: {sql: "SELECT ...", url_env: VAR} (see SqlSource).
    source: Annotated[
        Annotated[str, Tag("file")] | Annotated[SqlSource, Tag("sql")],
        Discriminator(lambda v: "file" if isinstance(v, str) else "sql"),
    ]
    format: Literal["csv", "parquet"] | None = None  # default: from the file extension
    key: str | None = None  # unique key of the table, if any

    @model_validator(mode="after")
    def _format_of_files(self) -> Table:
        if isinstance(self.source, SqlSource) and self.format is not None:
            raise ValueError("`format` is for file sources, not a SQL query")
        return self

    def file_format(self) -> str:
        if isinstance(self.source, SqlSource):
            raise SpecError("a SQL source has no file format")
        if self.format:
            return self.format
        suffix = Path(self.source).suffix.lower()
        if suffix in (".csv", ".parquet"):
            return suffix[1:]
        raise SpecError(f"cannot tell the format of {self.source!r}: set `format`")


class Join(Strict):
    table: str
    key: str  # the column both tables share


# A category in a spec: text, or a number that is a code (1 and "1" are the category "1"); a
# YAML boolean (`true`) is refused, since a category value never is one.
Category = Annotated[str, BeforeValidator(spec_category)]


class Column(Strict):
    role: Role
    table: str | None = None  # which table holds it (default: the first that has it)
    label: str | None = None
    unit: str | None = None
    description: str | None = None
    protected: bool = False  # kept out of the features, kept for fairness checks
    feature: bool | None = None  # default: numeric/categorical and not protected
    min: float | None = None
    max: float | None = None
    integer: bool = False
    categories: list[Category] | None = None
    default: Any = None  # the web form's starting value
    replace: dict[Category, Category] = Field(default_factory=dict)  # cleaning: raw -> value
    missing_values: list[Any] = Field(default_factory=list)  # cleaning: treated as missing
    max_null_rate: float = Field(0.0, ge=0, le=1)
    monotone: Literal["increasing", "decreasing"] | None = None
    binning: Binning | None = None  # the scorecard's bins of this field (default: the settings)

    @model_validator(mode="after")
    def _binning_fits(self) -> Column:
        problem = binning_conflict(self.binning, self.monotone, self.role == Role.CATEGORICAL,
                                   self.is_feature)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def is_feature(self) -> bool:
        if self.feature is not None:
            return self.feature
        return self.role in (Role.NUMERIC, Role.CATEGORICAL) and not self.protected


class Derived(Strict):
    expr: str
    label: str | None = None
    description: str | None = None
    monotone: Literal["increasing", "decreasing"] | None = None
    binning: Binning | None = None  # the scorecard's bins of this feature (default: the settings)

    @model_validator(mode="after")
    def _binning_fits(self) -> Derived:
        problem = binning_conflict(self.binning, self.monotone, False, True)
        if problem:
            raise ValueError(problem)
        return self


class Rule(Strict):
    """A check across fields of one application, e.g. `delinquent_months <= total_loan_months`."""

    check: str
    field: str | None = None  # the field the error is reported on (default: the first named)
    message: str | None = None


class Target(Strict):
    column: str
    positive: Any  # the value that means default
    label: str = "default"


class Gate(Strict):
    """Dataset-specific approval thresholds (default: the settings)."""

    min_roc_auc: float | None = Field(None, ge=0.5, le=1.0)
    max_ece: float | None = Field(None, gt=0, le=1)
    min_approval_ratio: float | None = Field(None, ge=0, le=1)


class DatasetSpec(Strict):
    name: str
    description: str = ""
    generator: str | None = None  # built-in generator that can write the source tables
    tables: dict[str, Table]
    base: str  # one row per application
    joins: list[Join] = Field(default_factory=list)
    target: Target
    columns: dict[str, Column]
    derived: dict[str, Derived] = Field(default_factory=dict)
    gate: Gate = Field(default_factory=Gate)
    rules: list[Rule] = Field(default_factory=list)  # refused in the API, the form and predict
    # The column whose values decide train/test membership (e.g. a customer id, to keep all of
    # a customer's loans on one side); default: the base table's key; none: a random split.
    split_key: str | None = None
    # Columns the validation report shows discrimination for, group by group, besides the
    # protected ones (numeric columns in quantile bins), e.g. [loan_purpose, income].
    segments: list[str] = Field(default_factory=list)
    # The numeric column holding each loan's exposure at default (e.g. the loan amount): the
    # expected_loss decision policy weighs loans by it.
    exposure: str | None = None
    # Decision policy settings of this dataset (flat names, e.g. cost_missed_default), over
    # the settings' (as `gate:` is for the gate's limits).
    policy: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        if self.base not in self.tables:
            raise ValueError(f"base table {self.base!r} is not among the tables")
        for join in self.joins:
            if join.table not in self.tables:
                raise ValueError(f"join table {join.table!r} is not among the tables")
        if self.target.column not in self.columns:
            raise ValueError(f"target column {self.target.column!r} has no entry in columns")
        inputs = set(self.input_columns())
        for rule in self.rules:
            try:
                names = parse_expression(rule.check).names
            except ValueError as exc:
                raise ValueError(f"rule {rule.check!r}: {exc}") from exc
            for ref in (*names, *([rule.field] if rule.field else [])):
                if ref not in inputs:
                    raise ValueError(f"rule {rule.check!r} uses {ref!r}, not an application field")
        if self.policy:
            try:
                PolicySettings(**{env(k): v for k, v in self.policy.items()})
            except ValidationError as exc:
                raise ValueError("policy: " + "; ".join(
                    f"{str(e['loc'][0]).removeprefix(PREFIX).lower() if e['loc'] else ''}: "
                    f"{e['msg']}" for e in exc.errors())) from None
        if self.exposure is not None and (self.exposure not in self.columns or
                                          self.columns[self.exposure].role != Role.NUMERIC):
            raise ValueError(f"exposure {self.exposure!r} is not a numeric column")
        if self.split_key is not None and self.split_key not in self.columns:
            raise ValueError(f"split_key {self.split_key!r} has no entry in columns")
        for name in self.segments:
            role = self.columns[name].role if name in self.columns else None
            if role not in (Role.NUMERIC, Role.CATEGORICAL, Role.IGNORED):
                raise ValueError(f"segment {name!r} is not a numeric, categorical or ignored "
                                 "column")
        for name, col in self.columns.items():
            if col.table is not None and col.table not in self.tables:
                raise ValueError(f"column {name!r}: unknown table {col.table!r}")
            if col.role == Role.CATEGORICAL and col.min is not None:
                raise ValueError(f"column {name!r}: a categorical column has no min")
        for name, d in self.derived.items():
            if name in self.columns:
                raise ValueError(f"derived feature {name!r} clashes with a column")
            try:
                names = parse_expression(d.expr).names
            except ValueError as exc:
                raise ValueError(f"derived feature {name!r}: {exc}") from exc
            for ref in names:
                ref_col = self.columns.get(ref)
                if ref_col is None or ref_col.role != Role.NUMERIC:
                    raise ValueError(f"derived feature {name!r} uses {ref!r}, not a numeric column")
        return self

    def split_column(self) -> str | None:
        return self.split_key or self.tables[self.base].key

    # Views used by features, validation, serving and monitoring.
    def numeric_features(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.role == Role.NUMERIC and c.is_feature]

    def categorical_features(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.role == Role.CATEGORICAL and c.is_feature]

    def input_columns(self) -> list[str]:
        """Columns an application must carry: features and what derived features use."""
        used = {ref for d in self.derived.values() for ref in parse_expression(d.expr).names}
        return [
            n
            for n, c in self.columns.items()
            if c.role in (Role.NUMERIC, Role.CATEGORICAL) and (c.is_feature or n in used)
        ]

    def protected_columns(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.protected]

    def is_default(self, values: Any) -> Any:
        """Boolean mask (or bool) of the target values that mean default."""
        positive = self.target.positive
        if hasattr(values, "astype") and isinstance(positive, str):
            return values.astype(str) == positive
        return values == positive


def load_spec(name_or_path: str | Path) -> DatasetSpec:
    """Load a built-in spec by name or a spec YAML file by path, with clear errors."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SPECS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        builtin = ", ".join(sorted(p.stem for p in SPECS_DIR.glob("*.yaml")))
        raise SpecError(f"no dataset spec at {path} (built-in specs: {builtin})")
    from ruamel.yaml import YAML, YAMLError  # here: scoring imports this module, not YAML

    try:  # YAML 1.2: `yes`, `no`, `on`, `off`, `Y`, `N` are text; a key given twice is refused
        raw = YAML(typ="safe", pure=True).load(path.read_text())
    except YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec is a YAML mapping")
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{path}: invalid dataset spec:\n{describe_errors(exc)}") from None


def describe_errors(exc: ValidationError) -> str:
    """One line per error, quoting the value given, except under `tables` and for the whole
    spec (a SQL source's URL may hold a password)."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"])
        quoted = bool(err["loc"]) and err["loc"][0] != "tables" and "input" in err
        lines.append(f"  {loc or '(spec)'}: {err['msg']}"
                     + (f" (given: {err['input']!r:.200})" if quoted else ""))
    return "\n".join(lines)
