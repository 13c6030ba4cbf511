"""The tier rules of tests/tiers.py: one tier per test, from markers, paths and fixtures, and a
unit test that starts a subprocess fails."""

import subprocess
import sys
from types import SimpleNamespace

import pytest

from tests import tiers


class Item:
    """What tier_of reads of a collected test."""

    def __init__(self, nodeid, fixtures=(), params=None, markers=()):
        self.nodeid, self.fixturenames = nodeid, list(fixtures)
        self.markers = [SimpleNamespace(name=m) for m in markers]
        if params is not None:
            self.callspec = SimpleNamespace(params=params)

    def iter_markers(self):
        return iter(self.markers)

    def get_closest_marker(self, name):
        return next((m for m in self.markers if m.name == name), None)


@pytest.mark.parametrize(("item", "tier"), [
    (Item("tests/unit/test_spec.py::test_x", ["tmp_path"]), "unit"),
    (Item("tests/e2e/test_training_dag.py::test_x"), "slow"),
    (Item("tests/e2e/test_training_dag.py::test_x", markers=["integration"]), "integration"),
    (Item("tests/serving/test_x.py::test_x", ["trained", "start_gunicorn"]), "integration"),
    (Item("tests/registry/test_x.py::test_x[local]", ["store"], {"store": "local"}), "unit"),
    (Item("tests/registry/test_x.py::test_x[s3]", ["store"], {"store": "s3"}), "integration"),
    (Item("tests/model/test_byod_scale.py::test_x", ["tmp_path"]), "slow"),
    (Item("tests/dags/test_dag_integrity.py::test_ruff_airflow_rules_pass"), "integration"),
])
def test_each_test_gets_the_tier_of_what_it_uses(item, tier):
    assert tiers.tier_of(item) == tier


def test_a_test_marked_with_two_tiers_gets_the_slowest():
    assert tiers.tier_of(Item("tests/x.py::test_x", markers=["integration", "slow"])) == "slow"


@pytest.mark.integration  # it starts a subprocess
def test_a_unit_test_that_starts_a_subprocess_fails():
    guard = tiers.UnitGuard()
    guard.install()
    with pytest.raises(pytest.fail.Exception, match="unit tier but used subprocess.Popen"):
        with guard.watching(Item("tests/x.py::test_x", markers=["unit"])):
            subprocess.run([sys.executable, "-c", "pass"], check=True)
    with guard.watching(Item("tests/x.py::test_x", markers=["integration"])):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    with guard.watching(Item("tests/x.py::test_x", markers=["unit"])):
        assert sum(range(10)) == 45  # in-process only: passes
