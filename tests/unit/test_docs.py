"""The documentation: the README's size, the spec example, and the generated references."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from credit_risk.config import GROUPS, Settings
from credit_risk.spec.dataset import load_spec

ROOT = Path(__file__).parents[2]
README_MAX_WORDS = 1_500


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_docs"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen_docs = _gen_docs()


def test_readme_stays_short():
    words = len((ROOT / "README.md").read_text().split())
    assert words <= README_MAX_WORDS, f"README.md has {words} words (at most {README_MAX_WORDS})"


def test_readme_links_point_at_docs_pages():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(((?:docs/|CHANGELOG)[^)#]*)", text)
    assert links, "the README links into the docs"
    for link in links:
        assert (ROOT / link).is_file(), f"README links to a missing file: {link}"


def test_spec_example_in_the_docs_loads(tmp_path):
    page = (ROOT / "docs" / "data" / "specs.md").read_text()
    section = page.split("## The spec format", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    path = tmp_path / "example.yaml"
    path.write_text(block)
    spec = load_spec(path)
    assert spec.name == "microloans" and spec.gate.max_ece == 0.10
    assert spec.input_columns() == ["monthly_income", "debt", "region", "months_on_book"]
    assert spec.protected_columns() == ["sex"]


def _leaves(model: type[BaseModel]) -> int:
    """How many settings a (possibly nested) settings class holds."""
    count = 0
    for field in model.model_fields.values():
        sub = field.annotation
        count += _leaves(sub) if isinstance(sub, type) and issubclass(sub, BaseModel) else 1
    return count


def test_configuration_reference_lists_every_setting():
    page = gen_docs.configuration_page()
    rows = re.findall(r"^\| `(CREDIT_RISK_\w+)`", page, re.M)
    assert len(rows) == len(set(rows)) == _leaves(Settings)
    for env in ("CREDIT_RISK_REGISTRY_URL", "CREDIT_RISK_DECISION_LOG", "CREDIT_RISK_API_KEYS",
                "CREDIT_RISK_SIGNING_KEY_FILE", "CREDIT_RISK_TRUSTED_KEYS", "CREDIT_RISK_DATASET"):
        assert env in rows
    assert ("| `CREDIT_RISK_MAX_BATCH_ROWS` | `serving.max_batch_rows` | integer (>= 1) | "
            "`10000` |") in page


def test_the_configuration_page_lists_every_setting_under_its_group():
    page = gen_docs.configuration_page()
    sections = dict(part.split("\n", 1) for part in page.split("\n## ")[1:])
    assert list(sections) == [g.title for g in GROUPS.values()]
    for group, cls in GROUPS.items():
        rows = re.findall(r"^\| `(CREDIT_RISK_\w+)` \| `([\w.]+)` \|", sections[cls.title], re.M)
        assert rows == [(f.alias, f"{group}.{n}") for n, f in cls.model_fields.items()]
        for field in cls.model_fields.values():
            assert field.description, field.alias


# Set by gunicorn's master for its workers (serving/gunicorn.conf.py), not a user setting.
INTERNAL_VARIABLES = {"CREDIT_RISK_GENERATED_SECRET"}


def test_environment_variables_named_by_the_code_are_documented():
    """A CREDIT_RISK_* name written anywhere in the shipped code is in the docs."""
    named = set()
    for folder in ("credit_risk", "serving", "dags", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            named |= set(re.findall(r"[\"'`(](CREDIT_RISK_[A-Z0-9_]*[A-Z0-9])\b",
                                    path.read_text()))
    assert {"CREDIT_RISK_DATASET", "CREDIT_RISK_GENERATED_SECRET"} <= named  # the scan works
    docs = gen_docs.configuration_page() + "".join(
        p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(n for n in named - INTERNAL_VARIABLES if n not in docs) == []
    assert not INTERNAL_VARIABLES & {r.env for r in gen_docs.settings_rows(Settings)}


class _Serving(BaseModel):
    """Serving."""

    reload_interval_s: float = Field(10.0, ge=0, description="How often serving polls.")


class _Signing(BaseSettings):
    """Signing."""

    model_config = SettingsConfigDict(env_prefix="CREDIT_RISK_")
    trusted_keys: str = ""  # comma-separated public keys


class _Nested(BaseSettings):
    """A nested settings class of the shape the flat Settings may take."""

    model_config = SettingsConfigDict(env_prefix="CREDIT_RISK_", env_nested_delimiter="__")
    data_dir: str = "var/data"
    serving: _Serving = Field(default_factory=_Serving)
    signing: _Signing = Field(default_factory=_Signing)
    workers: int | None = Field(None, validation_alias=AliasChoices("CREDIT_RISK_WORKERS"))


def test_nested_settings_rows():
    rows = {r.env: r for r in gen_docs.settings_rows(_Nested)}
    assert set(rows) == {"CREDIT_RISK_DATA_DIR", "CREDIT_RISK_SERVING__RELOAD_INTERVAL_S",
                         "CREDIT_RISK_TRUSTED_KEYS", "CREDIT_RISK_WORKERS"}
    serving = rows["CREDIT_RISK_SERVING__RELOAD_INTERVAL_S"]
    assert (serving.type, serving.default, serving.description, serving.group) == (
        "number (>= 0)", "10.0", "How often serving polls.", "Serving.")
    keys = rows["CREDIT_RISK_TRUSTED_KEYS"]
    assert (keys.description, keys.group) == ("comma-separated public keys", "Signing.")
    assert rows["CREDIT_RISK_WORKERS"].type == "integer, optional"


@pytest.mark.parametrize("env, value, read", [
    ("CREDIT_RISK_DATA_DIR", "/data", lambda n: n.data_dir == "/data"),
    ("CREDIT_RISK_SERVING__RELOAD_INTERVAL_S", "3", lambda n: n.serving.reload_interval_s == 3),
    ("CREDIT_RISK_TRUSTED_KEYS", "a.pem", lambda n: n.signing.trusted_keys == "a.pem"),
    ("CREDIT_RISK_WORKERS", "4", lambda n: n.workers == 4),
])
def test_documented_names_are_the_ones_read(monkeypatch, env, value, read):
    """Each name the reference gives for a nested setting is the variable pydantic reads."""
    assert env in {r.env for r in gen_docs.settings_rows(_Nested)}
    monkeypatch.setenv(env, value)
    assert read(_Nested())


def test_api_reference_covers_every_path_of_the_openapi_document():
    doc = gen_docs.openapi_example()
    page = gen_docs.api_page()
    for path, methods in doc["paths"].items():
        for method in methods:
            assert f"## `{method.upper()} {path}`" in page
    for name in doc["components"]["schemas"]:
        assert f"### {name}" in page
    fields = doc["components"]["schemas"]["Application"]["properties"]
    assert {"income", "loan_purpose", "application_id"} <= set(fields)


def test_benchmark_pages_name_the_command_that_reproduces_them():
    pages = gen_docs.benchmark_pages()
    assert set(pages) == {f"benchmarks/{n.lower()}" for n in gen_docs.BENCHMARKS}
    for name, text in pages.items():
        assert '!!! note "Reproduce"' in text, name


def test_spec_reference_lists_every_key_of_every_section():
    from credit_risk.spec import dataset

    page = gen_docs.spec_reference_page()
    for model_name, where in gen_docs.SPEC_SECTIONS:
        section = page.split(f"## {where}\n", 1)[1].split("\n## ", 1)[0]
        for key in getattr(dataset, model_name).model_fields:
            assert f"| `{key}` |" in section, (where, key)
