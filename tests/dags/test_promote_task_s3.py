"""The training DAG's publish task (which promotes what the gate approved) against a signed
registry on S3 (moto's server): with the right key it publishes and promotes a signed version;
with a signing key that is missing, unreadable or not trusted it fails at its first try,
without the DAG's retries (AirflowFailException), and writes nothing to the registry (except
in one case, a strict expected failure below: a wrong key on a worker that trusts no key)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from datetime import timedelta

import fsspec
import pytest

from credit_risk.cli import main
from credit_risk.config import Settings
from credit_risk.pipeline import steps
from credit_risk.registry import Registry
from credit_risk.registry.signing import PRIVATE_FILE, PUBLIC_FILE, key_id, load_public_key
from tests.conftest import generate_data, small_settings
from tests.dags.bundle import get_dag

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # two runs of the DAG


def _keys(folder) -> tuple[str, str, str]:
    """`credit-risk keys generate`: (private PEM, public PEM, key id)."""
    assert main(["keys", "generate", "--out", str(folder)]) == 0
    public = folder / PUBLIC_FILE
    return str(folder / PRIVATE_FILE), str(public), key_id(load_public_key(public))


class Deployment:
    """A registry on S3 with one champion published by the DAG, the keys around it, and the
    comparison of a second run that has not been published yet (what the publish task takes)."""

    def __init__(self, env: dict[str, str], keys: dict[str, tuple[str, str, str]]):
        self.env, self.keys = env, keys
        self.champion = ""
        self.pending = ""  # a comparison.json path

    def registry(self) -> Registry:
        """The registry as a verifier reads it: the trusted keys, no signing key."""
        return Registry.from_settings(Settings(
            signing_key_file=None, trusted_keys=self.env["CREDIT_RISK_TRUSTED_KEYS"]))

    def objects(self) -> dict[str, str]:
        """Every object under the registry prefix and the SHA-256 of its bytes."""
        fs, root = fsspec.core.url_to_fs(self.env["CREDIT_RISK_REGISTRY_URL"],
                                         use_listings_cache=False)
        return {p: hashlib.sha256(fs.cat_file(p)).hexdigest() for p in fs.find(root)}

    def snapshot(self) -> tuple:
        """What a change would show: every object, the versions, aliases and history."""
        registry = self.registry()
        return (self.objects(), registry.versions(), registry.aliases(), registry.history())


@pytest.fixture(scope="module")
def deployment(s3_server, tmp_path_factory):
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   capture_output=True)
    base = tmp_path_factory.mktemp("promote-s3")
    keys = {name: _keys(base / "keys" / name) for name in ("signer", "rogue")}
    _, bucket = s3_server
    settings = generate_data(small_settings(base, models=("logistic_regression",)))
    env = {"CREDIT_RISK_DATA_DIR": str(settings.data.dir),
           "CREDIT_RISK_RUNS_DIR": str(settings.data.runs_dir),
           "CREDIT_RISK_REGISTRY_URL": f"s3://{bucket}/promote-task-{uuid.uuid4().hex[:8]}",
           "CREDIT_RISK_DECISION_LOG": str(base / "decisions.jsonl"),
           "CREDIT_RISK_N_CUSTOMERS": "3000", "CREDIT_RISK_CV_FOLDS": "3",
           "CREDIT_RISK_SEARCH_ITERATIONS": "1",
           "CREDIT_RISK_SIGNING_KEY_FILE": keys["signer"][0],
           "CREDIT_RISK_TRUSTED_KEYS": keys["signer"][1]}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        deployment = Deployment(env, keys)
        dr, states = _run_dag({"models": ["logistic_regression"]})
        assert dr.state == "success", states
        deployment.champion = deployment.registry().alias_version("champion") or ""
        # A second run up to the comparison, by the functions the DAG's tasks call.
        settings = Settings()
        snapshot = steps.ingest_step(settings, "pending-run")
        steps.validate_step(settings, snapshot)
        split = steps.prepare_step(settings, snapshot)
        deployment.pending = steps.evaluate_step(
            settings, split, [steps.train_step(settings, split, "logistic_regression")])
        yield deployment


@pytest.fixture
def env(deployment, monkeypatch):
    """The deployment's environment, restored after each test (the fixture's is module-wide)."""
    for key, value in deployment.env.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


def _run_dag(conf):
    dag = get_dag("credit_risk_training")
    for t in dag.tasks:
        t.retry_delay = timedelta(0)  # the DAG's own retries, without the wait
    dr = dag.test(run_conf=conf)
    return dr, {(ti.task_id, ti.map_index): ti for ti in dr.get_task_instances()}


def _publish_task():
    """The callable the DAG's publish task runs (fails_fast around publish_step)."""
    return get_dag("credit_risk_training").get_task("publish").python_callable


def test_the_dag_publishes_and_promotes_a_signed_version_on_s3(deployment, env, capsys):
    registry = deployment.registry()
    champion = deployment.champion
    assert champion and registry.versions()[0] == champion
    assert registry.verify(champion)["run"].startswith("manual__")  # dag.test()'s run
    history = registry.history()
    assert history[0]["version"] == champion and history[0]["verified"] is True
    _, _, signer = deployment.keys["signer"]
    assert main(["models", "verify", champion]) == 0
    assert f"signed by trusted key {signer}" in capsys.readouterr().out


def test_in_airflow_a_key_that_is_not_trusted_fails_publish_at_its_first_try(
        deployment, env):
    env.setenv("CREDIT_RISK_SIGNING_KEY_FILE", deployment.keys["rogue"][0])
    before = deployment.snapshot()
    dr, tis = _run_dag({"models": ["logistic_regression"], "force": True})
    publish = tis[("publish", -1)]
    assert dr.state == "failed" and publish.state == "failed"
    assert publish.try_number == 1  # not retried...
    assert get_dag("credit_risk_training").get_task("publish").retries == 2  # ...though it may
    assert tis[("compare", -1)].state == "success"  # everything before it ran
    assert deployment.snapshot() == before


@pytest.mark.parametrize("case,message", [
    ("unset", "trusted keys are configured but no signing key"),
    ("absent", "cannot read the signing key"),
    ("garbage", "cannot read the signing key"),
    ("public", "cannot read the signing key"),  # the public key where the private one goes
    ("rogue", "is not one of the trusted keys"),
])
def test_a_missing_or_wrong_key_fails_publish_without_retries_and_changes_nothing(
        deployment, env, tmp_path, case, message):
    (tmp_path / "garbage.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n")
    key = {"absent": str(tmp_path / "no-such-key.pem"), "garbage": str(tmp_path / "garbage.pem"),
           "public": deployment.keys["signer"][1], "rogue": deployment.keys["rogue"][0]}.get(case)
    if key is None:
        env.delenv("CREDIT_RISK_SIGNING_KEY_FILE")
    else:
        env.setenv("CREDIT_RISK_SIGNING_KEY_FILE", key)
    before = deployment.snapshot()
    assert message in _publish_fails(deployment)
    assert deployment.snapshot() == before


def _publish_fails(deployment) -> str:
    """The publish task on the pending run, failing at once: its message."""
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="not retried") as failed:
        _publish_task()(deployment.pending)
    return str(failed.value)


@pytest.fixture
def rogue_worker_without_trusted_keys(deployment, env):
    """A worker with a key that is not the registry's and no trusted keys to tell it so."""
    env.delenv("CREDIT_RISK_TRUSTED_KEYS")
    env.setenv("CREDIT_RISK_SIGNING_KEY_FILE", deployment.keys["rogue"][0])


def test_a_wrong_key_on_a_worker_without_trusted_keys_fails_and_verifiers_see_no_change(
        deployment, rogue_worker_without_trusted_keys):
    before = deployment.snapshot()[1:]
    assert "signed by another key than this signing key" in _publish_fails(deployment)
    assert deployment.snapshot()[1:] == before  # versions, aliases, history as verified


def test_a_wrong_key_on_a_worker_without_trusted_keys_writes_no_object(
        deployment, rogue_worker_without_trusted_keys):
    before = deployment.objects()
    _publish_fails(deployment)
    assert sorted(set(deployment.objects()) - set(before)) == []


def test_with_the_right_key_the_refused_run_is_published_and_promoted(deployment, env):
    version = _publish_task()(deployment.pending)
    registry = deployment.registry()
    assert registry.verify(version)["run"] == "pending-run"
    assert registry.alias_version("champion") == version
    assert registry.alias_version("previous") == deployment.champion
    assert [h["verified"] for h in registry.history()] == [True] * len(registry.history())
