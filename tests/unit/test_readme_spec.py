"""The spec example in the README is a valid spec."""

import re
from pathlib import Path

from credit_risk.spec.dataset import load_spec


def test_readme_spec_example_loads(tmp_path):
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Dataset specs", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    path = tmp_path / "example.yaml"
    path.write_text(block)
    spec = load_spec(path)
    assert spec.name == "microloans" and spec.gate.max_ece == 0.10
    assert spec.input_columns() == ["monthly_income", "debt", "region", "months_on_book"]
    assert spec.protected_columns() == ["sex"]
