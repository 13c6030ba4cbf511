"""Generated pages of the documentation site: configuration, API, benchmarks, changelog.

A MkDocs hook (`hooks:` in mkdocs.yml): every build writes these pages from the code and the
committed results, so they cannot drift from them. `python scripts/gen_docs.py OUT` writes the
same pages into OUT, to read them without a build.
"""

from __future__ import annotations

import ast
import enum
import inspect
import json
import sys
import textwrap
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one

from pydantic import BaseModel  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402
from pydantic_settings import BaseSettings  # noqa: E402

# Benchmark result files -> the command that reproduces them.
BENCHMARKS = {
    "RESULTS.md": "make bench-serving; make bench-validation",
    "default_training.md": "make bench-training",
    "german_credit.md": "make bench-german",
    "pipeline.md": "make bench-pipeline",
    "train_cost.md": "make bench-train-cost",
    "distributed.md": "flock /tmp/bench.lock make bench-distributed",
    "drift.md": "python benchmarks/bench_drift.py",
    "validation_scale.md": "python benchmarks/bench_validation.py --customers 1000000",
    "serving_image.md": "python benchmarks/bench_image.py",
    "predict.md": "make bench-predict",
    "calibration.md": "python benchmarks/bench_calibration.py",
    "batch.md": "make bench-batch",
    "policy.md": "make bench-policy",
    "request_path.md": "make bench-request-path",
}
BENCHMARK_ASSETS = ("pipeline.png",)


# -- configuration reference ---------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One environment variable of the settings."""

    env: str
    type: str
    default: str
    description: str
    group: str
    attribute: str = ""  # where code reads it: "registry.url" for settings.registry.url


def _comments(cls: type) -> dict[str, str]:
    """Field name -> the comments right above its line and at its end, in the class body."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    out: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above = []
        row = node.lineno - 2
        while row >= 0 and lines[row].strip().startswith("#"):
            above.insert(0, lines[row].strip().lstrip("#").strip())
            row -= 1
        end = lines[(node.end_lineno or node.lineno) - 1]
        trailing = [end.split("  # ", 1)[1].strip()] if "  # " in end else []
        out[node.target.id] = " ".join(above + trailing)
    return out


def _type_name(annotation: Any) -> str:
    """A short readable name of a field's type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        name = " | ".join(_type_name(a) for a in args if a is not type(None))
        return name + (", optional" if type(None) in args else "")
    if origin in (tuple, list):
        inner = _type_name(args[0]) if args else "any"
        return f"list of {inner} (comma-separated)" if origin is tuple else f"list of {inner}"
    if origin is dict:
        return "JSON object"
    if isinstance(annotation, type):
        return {"Path": "path", "str": "text", "int": "integer", "float": "number",
                "bool": "true/false"}.get(annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


def _bounds(field: FieldInfo) -> str:
    """The field's numeric bounds and pattern, e.g. '>= 1, <= 10'."""
    parts = []
    for meta in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"),
                           ("pattern", "matches")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sign} {value}")
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "(its own defaults)"
    if value in ("", (), [], {}):
        return "empty"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _env_names(cls: type[BaseModel], name: str, field: FieldInfo, prefix: str) -> str:
    alias = field.validation_alias or field.alias
    if isinstance(alias, str):
        return alias.upper()
    choices = getattr(alias, "choices", None)
    if choices:
        return " or ".join(str(c).upper() for c in choices if isinstance(c, str))
    return f"{prefix}{name}".upper()


def _nested(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds, if it is one (a settings group)."""
    candidates = typing.get_args(annotation) or (annotation,)
    for c in candidates:
        if isinstance(c, type) and issubclass(c, BaseModel):
            return c
    return None


def settings_rows(cls: type[BaseModel], prefix: str | None = None,
                  group: str = "", path: str = "") -> Iterator[Setting]:
    """Every environment variable of a settings class, nested groups walked depth first.

    A nested BaseSettings group reads its own prefix; a nested plain model is read through
    the parent's nested delimiter (CREDIT_RISK_GROUP__FIELD), or an alias when it has one.
    A group's section title is its ``title`` class attribute, else its docstring's first line.
    """
    config = getattr(cls, "model_config", {})
    if issubclass(cls, BaseSettings):
        prefix = config.get("env_prefix", "") or ""
    prefix = prefix or ""
    delimiter = config.get("env_nested_delimiter") or "__"
    comments = _comments(cls)
    group = group or "General"
    for name, field in cls.model_fields.items():
        sub = _nested(field.annotation)
        if sub is not None:
            own_title = sub.__dict__.get("title")
            title = field.title or (own_title if isinstance(own_title, str) and own_title
                                    else (inspect.getdoc(sub) or name).splitlines()[0])
            sub_prefix = None if issubclass(sub, BaseSettings) else f"{prefix}{name}{delimiter}"
            yield from settings_rows(sub, sub_prefix, title, f"{path}{name}.")
            continue
        bounds = _bounds(field)
        kind = _type_name(field.annotation) + (f" ({bounds})" if bounds else "")
        description = field.description or comments.get(name, "")
        yield Setting(_env_names(cls, name, field, prefix), kind, _default(field),
                      description, group, f"{path}{name}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def configuration_page() -> str:
    """The configuration reference, from credit_risk.config.Settings."""
    from credit_risk.config import Settings

    out = ["# Configuration reference", "",
           "Generated from `credit_risk/config/` at every docs build. Every setting is an "
           "environment variable (or a line of a `.env` file); a list is comma-separated, a "
           "JSON object is written as JSON. Relative paths are relative to the working "
           "directory. Code reads a setting from its group (the Attribute column, under "
           "`settings.`); `Settings(...)` and `settings.replace(...)` take the variable's name "
           "without `CREDIT_RISK_`, in lower case (`registry_url`).", ""]
    current = None
    for row in settings_rows(Settings):
        if row.group != current:
            current = row.group
            out += ["", f"## {row.group}", "",
                    "| Variable | Attribute | Type | Default | Meaning |",
                    "|---|---|---|---|---|"]
        out.append(f"| `{row.env}` | `{row.attribute}` | {_cell(row.type)} | "
                   f"`{_cell(row.default)}` | {_cell(row.description)} |")
    return "\n".join(out) + "\n"


def setting_default(env: str) -> str:
    """The documented default of one environment variable."""
    from credit_risk.config import Settings

    for row in settings_rows(Settings):
        if env in row.env.split(" or "):
            return row.default
    raise KeyError(f"no setting {env}")


# -- dataset spec reference ---------------------------------------------------------------
SPEC_SECTIONS = (("DatasetSpec", "The spec file"), ("Table", "tables.<name>"),
                 ("SqlSource", "tables.<name>.source (a SQL query)"), ("Join", "joins[]"),
                 ("Target", "target"), ("Column", "columns.<name>"),
                 ("Derived", "derived.<name>"), ("Binning", "columns.<name>.binning, "
                 "derived.<name>.binning"), ("Rule", "rules[]"), ("Gate", "gate"))


def _spec_type(annotation: Any) -> str:
    """A spec key's type, naming the spec's own sections."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _spec_type(args[0])
    if origin is dict:
        return f"map of name to {_spec_type(args[1])}"
    if origin is list:
        return f"list of {_spec_type(args[0])}"
    if origin in (typing.Union, types.UnionType):
        name = " or ".join(_spec_type(a) for a in args if a is not type(None))
        return name + (", optional" if type(None) in args else "")
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in annotation)
    return _type_name(annotation)


def spec_reference_page() -> str:
    """Every key of a dataset spec, from the pydantic models in credit_risk/spec/dataset.py."""
    from credit_risk.spec import dataset

    out = ["# Dataset spec reference", "",
           "Generated from `credit_risk/spec/dataset.py` at every docs build. A key not listed "
           "here is refused. An example spec with comments: [dataset specs](specs.md).", ""]
    for model_name, where in SPEC_SECTIONS:
        model = getattr(dataset, model_name)
        comments = _comments(model)
        out += [f"## {where}", ""]
        doc = inspect.getdoc(model)
        if doc and model.__doc__:
            out += [" ".join(doc.split()), ""]
        out += ["| Key | Type | Default | Meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            bounds = _bounds(field)
            kind = _spec_type(field.annotation) + (f" ({bounds})" if bounds else "")
            out.append(f"| `{name}` | {_cell(kind)} | `{_cell(_default(field))}` | "
                       f"{_cell(field.description or comments.get(name, ''))} |")
        out.append("")
    return "\n".join(out) + "\n"


# -- API reference -------------------------------------------------------------------------
def example_fields(spec_name: str = "lauki_synthetic") -> list[dict[str, Any]]:
    """The application fields of a model of the given built-in spec, from the spec alone."""
    from credit_risk.spec.dataset import load_spec
    from credit_risk.spec.fields import Constraints

    spec = load_spec(spec_name)
    fields = []
    for name in spec.input_columns():
        col = spec.columns[name]
        constraints = Constraints.of_column(col)
        assert constraints is not None  # an input column is numeric or categorical
        fields.append({"name": name, "label": col.label or name, "description": col.description,
                       **constraints.as_field(), "unit": col.unit, "default": col.default})
    return fields


def openapi_example() -> dict[str, Any]:
    """The OpenAPI document serving publishes for a model of the default dataset."""
    from credit_risk.scoring.request import openapi_document

    return openapi_document(
        example_fields(), model_version="<model version>",
        max_batch_rows=int(setting_default("CREDIT_RISK_MAX_BATCH_ROWS")),
        max_request_bytes=int(setting_default("CREDIT_RISK_MAX_REQUEST_BYTES")), auth=True)


def _schema_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_schema_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_schema_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema and isinstance(
            schema["additionalProperties"], dict):
        return f"object of {_schema_type(schema['additionalProperties'])}"
    bounds = [f"{sign} {schema[k]}" for k, sign in (("minimum", ">="), ("maximum", "<="),
                                                    ("exclusiveMinimum", ">"),
                                                    ("exclusiveMaximum", "<"),
                                                    ("maxLength", "length <="),
                                                    ("maxItems", "items <="))
              if k in schema]
    return str(kind) + (f" ({', '.join(bounds)})" if bounds else "")


def api_page() -> str:
    """The API reference, from the OpenAPI document the serving app builds."""
    doc = openapi_example()
    out = ["# API reference", "",
           "Generated at every docs build from the OpenAPI document the serving app publishes "
           "(`credit_risk/scoring/request.py`), here for a model of the default dataset "
           "`lauki_synthetic` with API keys configured. A running server publishes its own at "
           "`GET /openapi.json` (readable at `/docs`): the application fields follow the "
           "loaded model's dataset spec. The whole document: [openapi.json](openapi.json).",
           "", doc["info"]["description"], ""]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            out += [f"## `{method.upper()} {path}`", "", op["summary"] + ".", ""]
            if op.get("security"):
                out += ["Needs an API key: `X-API-Key: KEY` or `Authorization: Bearer KEY`.", ""]
            for param in op.get("parameters", []):
                out += [f"Query parameter `{param['name']}` ({_schema_type(param['schema'])}):"
                        f" {param.get('description', '')}", ""]
            body = op.get("requestBody")
            if body:
                schema = body["content"]["application/json"]["schema"]
                out += [f"Request body: {_schema_type(schema)}", ""]
            out += ["| Status | Meaning | Body |", "|---|---|---|"]
            for status, resp in op["responses"].items():
                content = resp.get("content", {})
                schema = next(iter(content.values()))["schema"] if content else {}
                headers = ", ".join(f"`{h}` header" for h in resp.get("headers", {}))
                meaning = resp["description"] + (f" ({headers})" if headers else "")
                out.append(f"| {status} | {_cell(meaning)} | "
                           f"{_cell(_schema_type(schema)) if schema else ''} |")
            out.append("")
    out += ["## Schemas", ""]
    for name, schema in doc["components"]["schemas"].items():
        out += [f"### {name}", ""]
        if schema.get("description"):
            out += [schema["description"], ""]
        props = schema.get("properties", {})
        if not props:
            out += [f"{_schema_type(schema)}.", ""]
            continue
        required = set(schema.get("required", []))
        out += ["| Field | Type | Required | Description |", "|---|---|---|---|"]
        for prop, sub in props.items():
            text = sub.get("description") or sub.get("title", "")
            out.append(f"| `{prop}` | {_cell(_schema_type(sub))} | "
                       f"{'yes' if prop in required else 'no'} | {_cell(text)} |")
        out.append("")
    return "\n".join(out) + "\n"


# -- benchmarks and changelog --------------------------------------------------------------
def benchmark_pages() -> dict[str, str]:
    """benchmarks/<file>.md as pages, each headed by the command that reproduces it."""
    pages = {}
    for name, command in BENCHMARKS.items():
        text = (ROOT / "benchmarks" / name).read_text()
        title, _, rest = text.partition("\n")
        pages[f"benchmarks/{name.lower()}"] = (
            f"{title}\n\n!!! note \"Reproduce\"\n    `{command}` (machine and date of the "
            f"figures below are in the text; raw numbers beside it in `benchmarks/`).\n{rest}")
    return pages


def readme_page() -> str:
    """The README as the site's home page, its links made relative to the site."""
    text = (ROOT / "README.md").read_text()
    return text.replace("](docs/", "](").replace("](CHANGELOG.md)", "](changelog.md)")


def pages() -> dict[str, str | bytes]:
    """Every generated page (and asset), keyed by its path in the site."""
    out: dict[str, str | bytes] = {
        "reference/configuration.md": configuration_page(),
        "reference/api.md": api_page(),
        "data/spec-reference.md": spec_reference_page(),
        "reference/openapi.json": json.dumps(openapi_example(), indent=2) + "\n",
        "index.md": readme_page(),
        "changelog.md": (ROOT / "CHANGELOG.md").read_text(),
        **benchmark_pages(),
    }
    for asset in BENCHMARK_ASSETS:
        out[f"benchmarks/{asset}"] = (ROOT / "benchmarks" / asset).read_bytes()
    return out


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated pages to the build."""
    from mkdocs.structure.files import File

    for path, content in pages().items():
        files.append(File.generated(config, path, content=content))
    return files


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/gen_docs.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    for path, content in pages().items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    print(f"wrote {len(pages())} files into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
