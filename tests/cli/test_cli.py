import csv

import pytest

from credit_risk.cli import main
from credit_risk.registry import Registry
from tests.conftest import republish


@pytest.fixture
def env(tmp_path, monkeypatch):
    values = {"DATA_DIR": tmp_path / "data", "RUNS_DIR": tmp_path / "runs",
              "REGISTRY_URL": tmp_path / "reg", "N_CUSTOMERS": 2500, "SEARCH_ITERATIONS": 1,
              "DECISION_LOG": tmp_path / "decisions.jsonl"}
    for key, value in values.items():
        monkeypatch.setenv(f"CREDIT_RISK_{key}", str(value))
    return tmp_path


@pytest.fixture
def two_versions(env, trained_copy, monkeypatch):
    """The trained fixture's registry (a copy) with a second version, a republished twin:
    what promote, rollback and history need, without training twice."""
    settings, version = trained_copy
    monkeypatch.setenv("CREDIT_RISK_REGISTRY_URL", settings.registry.url)
    return version, republish(Registry(settings.registry.url), version)


def test_generate_train_list_show_predict(env, capsys):
    assert main(["generate-data", "--customers", "2500"]) == 0
    assert (env / "data" / "lauki_synthetic" / "loans.csv").exists()
    assert main(["train", "--models", "logistic_regression,xgboost"]) == 0
    out = capsys.readouterr().out
    assert "logistic_regression" in out and "xgboost" in out and "promoted to champion" in out

    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith("dataset lauki_synthetic: champion ")  # grouped by dataset
    version = listing.splitlines()[3].split()[0]
    assert "champion" in listing

    assert main(["models", "show", version, "--json"]) == 0
    assert f'"version": "{version}"' in capsys.readouterr().out

    # predict: the joined application columns in, PD columns out; a bad row gets an error.
    import pandas as pd

    from credit_risk.datasets import synthetic
    from credit_risk.pipeline.ingest import assemble
    from credit_risk.spec.dataset import load_spec

    apps = assemble(load_spec("lauki_synthetic"), synthetic.generate(20, seed=9))
    apps.loc[3, "credit_utilization_ratio"] = 250
    apps.loc[5, "bank_balance_at_application"] = 1e10  # beyond the training range: capped
    apps.to_csv(env / "apps.csv", index=False)
    assert main(["predict", str(env / "apps.csv"), "-o", str(env / "out.csv"), "--log"]) == 3
    rows = list(csv.DictReader(open(env / "out.csv")))
    assert len(rows) == 20
    assert rows[0]["model_version"] == version and float(rows[0]["probability_of_default"]) > 0
    assert "credit_utilization_ratio" in rows[3]["error"]
    assert rows[3]["probability_of_default"] == ""
    assert pd.read_csv(env / "out.csv")["rating"].notna().sum() == 19
    assert "raises the risk" in " ".join(r["reasons"] for r in rows)
    assert rows[5]["warnings"].startswith("bank_balance_at_application outside the training")
    # With --log every scored row is a logged decision (the monitoring DAG reads them).
    from credit_risk.records.backends import decision_log_at

    logged = decision_log_at(env / "decisions.jsonl").read()
    assert len(logged) == 19 and logged[0]["model_version"] == version
    assert [w["field"] for w in logged[4]["warnings"]] == ["bank_balance_at_application"]


def test_generate_applications_for_predict(env, capsys):
    out = env / "apps.csv"
    assert main(["generate-data", "--customers", "300", "--shift", "--applications", str(out)]) == 0
    import pandas as pd

    apps = pd.read_csv(out)
    assert len(apps) == 300 and "default" not in apps and "credit_utilization_ratio" in apps


def test_promote_rollback_history(two_versions, capsys):
    main(["models", "list"])
    lines = [line for line in capsys.readouterr().out.splitlines()[3:] if line]
    assert len(lines) == 2
    other = next(line.split()[0] for line in lines if "champion" not in line)
    assert main(["models", "promote", other, "--reason", "manual", "--by", "dana"]) == 0
    assert main(["models", "rollback", "--reason", "oops"]) == 0
    capsys.readouterr()
    main(["models", "history"])
    history = capsys.readouterr().out
    assert "by dana: manual" in history and "rollback: oops" in history


def test_errors_are_clear_and_nonzero(env, capsys):
    assert main(["models", "show", "nope"]) == 1
    assert "no model version 'nope'" in capsys.readouterr().err
    assert main(["train", "--spec", "missing_spec"]) == 1
    assert "no dataset spec" in capsys.readouterr().err


def test_keys_generate_and_models_verify_exit_codes(env, capsys, monkeypatch):
    import json
    import stat

    from credit_risk.config import Settings
    from credit_risk.registry import Registry, sha256_bytes

    assert main(["keys", "generate", "--out", str(env / "keys")]) == 0
    out = capsys.readouterr().out
    private, public = env / "keys" / "signing_key.pem", env / "keys" / "signing_key.pub.pem"
    assert f"CREDIT_RISK_TRUSTED_KEYS={public}" in out
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert main(["keys", "generate", "--out", str(env / "keys")]) == 1  # never overwrites
    assert "exists already" in capsys.readouterr().err

    unsigned = Registry.from_settings(Settings()).publish({"m.bin": b"0"}, {"dataset": "d"})
    monkeypatch.setenv("CREDIT_RISK_SIGNING_KEY_FILE", str(private))
    monkeypatch.setenv("CREDIT_RISK_TRUSTED_KEYS", str(public))
    registry = Registry.from_settings(Settings())
    good = registry.publish({"m.bin": b"1"}, {"dataset": "d"})
    bad = registry.publish({"m.bin": b"2"}, {"dataset": "d"})
    folder = env / "reg" / "models" / bad
    (folder / "m.bin").write_bytes(b"evil")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["m.bin"] = sha256_bytes(b"evil")
    manifest["sizes"]["m.bin"] = len(b"evil")  # the attacker rewrites the size too
    (folder / "manifest.json").write_text(json.dumps(manifest))

    assert main(["models", "verify", good]) == 0
    assert "signed by trusted key" in capsys.readouterr().out
    assert main(["models", "verify", bad]) == 1
    assert "signature does not match" in capsys.readouterr().err
    assert main(["models", "verify", unsigned]) == 1
    assert "not signed" in capsys.readouterr().err
    assert main(["models", "verify", "20990101T000000.000000Z-abcdef"]) == 1
    assert "no model version" in capsys.readouterr().err

    assert main(["models", "promote", good, "--reason", "ok"]) == 0
    assert main(["models", "promote", bad, "--reason", "attack"]) == 1
    assert "signature does not match" in capsys.readouterr().err
    assert Registry(str(env / "reg")).alias_version("champion") == good

    (env / "reg" / "models" / good / "m.bin").write_bytes(b"flipped")  # corruption
    assert main(["models", "verify", good]) == 1
    assert "SHA-256 does not match" in capsys.readouterr().err

    monkeypatch.delenv("CREDIT_RISK_TRUSTED_KEYS")  # no keys: files only, and it says so
    assert main(["models", "verify", bad]) == 0
    assert "signature NOT checked" in capsys.readouterr().out
    assert main(["models", "verify", bad, "--trusted-key", str(public)]) == 1
