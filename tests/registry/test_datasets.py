"""Many portfolios in one registry: aliases per dataset, hostile names and records."""

import json

import pytest

from credit_risk.cli import main
from credit_risk.registry import (
    Registry,
    RegistryError,
    signing,
    valid_dataset,
)


def _publish(registry, dataset, payload=b"model"):
    return registry.publish({"model.bin": payload, "card.md": b"# card"}, {"dataset": dataset})


def _two_datasets(registry):
    """lauki: a1 then a2 promoted; sba: b1 promoted."""
    a1, a2 = _publish(registry, "lauki", b"a1"), _publish(registry, "lauki", b"a2")
    b1 = _publish(registry, "sba", b"b1")
    registry.promote(a1, "first lauki")
    registry.promote(b1, "first sba")
    registry.promote(a2, "second lauki")
    return a1, a2, b1


def _state(store):
    return json.loads(store.read("aliases/state.json"))


def test_each_dataset_has_its_own_champion_and_previous(store):
    registry = Registry(store.url)
    a1, a2, b1 = _two_datasets(registry)
    assert registry.alias_version("champion", "lauki") == a2
    assert registry.alias_version("previous", "lauki") == a1
    assert registry.alias_version("champion", "sba") == b1
    assert registry.alias_version("previous", "sba") is None  # not lauki's old champion
    assert registry.alias("champion", "sba")["dataset"] == "sba"
    assert registry.alias_version("champion", "german") is None
    assert set(registry.aliases()) == {"lauki", "sba"}
    history = registry.history()
    assert [(h["dataset"], h["alias"], h["version"]) for h in history] == [
        ("lauki", "champion", a1), ("sba", "champion", b1),
        ("lauki", "previous", a1), ("lauki", "champion", a2)]


def test_rolling_back_one_dataset_leaves_the_other(store):
    registry = Registry(store.url)
    a1, a2, b1 = _two_datasets(registry)
    b2 = _publish(registry, "sba", b"b2")
    registry.promote(b2, "second sba")
    assert registry.rollback("sba misbehaves", dataset="sba") == b1
    reopened = Registry(store.url)
    assert (reopened.alias_version("champion", "sba"),
            reopened.alias_version("previous", "sba")) == (b1, b2)
    assert (reopened.alias_version("champion", "lauki"),
            reopened.alias_version("previous", "lauki")) == (a2, a1)
    assert reopened.rollback("lauki too", dataset="lauki") == a1
    assert reopened.alias_version("champion", "sba") == b1


def test_without_a_dataset_the_only_one_is_used_and_several_must_be_named(store):
    registry = Registry(store.url)
    a1, a2 = _publish(registry, "lauki", b"1"), _publish(registry, "lauki", b"2")
    registry.promote(a1, "one")
    registry.promote(a2, "two")
    assert registry.alias_version("champion") == a2  # one dataset: as before datasets
    b1 = _publish(registry, "sba", b"3")
    registry.promote(b1, "sba")
    with pytest.raises(RegistryError, match="several datasets .*'lauki', 'sba'.*name one"):
        registry.alias_version("champion")
    with pytest.raises(RegistryError, match="several datasets"):
        registry.rollback("which one?")
    assert registry.alias_version("champion", "lauki") == a2  # nothing was rolled back
    # The settings' dataset, or (reads only) the preferred one: the configured spec's.
    assert Registry(store.url, dataset="sba").alias_version("champion") == b1
    assert Registry(store.url, prefer="lauki").alias_version("champion") == a2
    with pytest.raises(RegistryError, match="several datasets"):
        Registry(store.url, prefer="lauki").rollback("a rollback is never guessed")
    assert Registry(store.url, dataset="lauki").rollback("named") == a1


def test_a_first_model_of_a_new_dataset_does_not_touch_the_others_aliases(store):
    registry = Registry(store.url)
    a1 = _publish(registry, "lauki")
    registry.promote(a1, "one")
    b1 = _publish(registry, "sba")
    registry.promote(b1, "first of its dataset")
    assert registry.alias_version("champion", "lauki") == a1
    assert registry.alias_version("previous", "lauki") is None
    with pytest.raises(RegistryError, match="no previous champion .*'sba'"):
        registry.rollback("nothing before it", dataset="sba")


def test_promote_checks_the_dataset_it_is_told(store):
    registry = Registry(store.url)
    a1 = _publish(registry, "lauki")
    with pytest.raises(RegistryError, match="model of dataset 'lauki', not of 'sba'"):
        registry.promote(a1, "wrong dataset", dataset="sba")
    assert registry.aliases() == {}


def test_one_record_holds_every_datasets_aliases(store):
    registry = Registry(store.url)
    a1, a2, b1 = _two_datasets(registry)
    state = _state(store)
    assert state["format"] == 3 and "aliases" not in state
    assert {d: {n: r["version"] for n, r in a.items()} for d, a in state["datasets"].items()} \
        == {"lauki": {"champion": a2, "previous": a1}, "sba": {"champion": b1}}
    assert state["dataset"] == "lauki" and state["changes"][-1]["alias"] == "champion"


# -- hostile names and records -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../lauki", "a/b", "a\\b", ".hidden", "", " lauki", "x\n",
                                  "\x1b[31mred", "x" * 101, 7])
def test_a_dataset_name_with_path_characters_is_refused(store, name):
    assert not valid_dataset(name)
    registry = Registry(store.url)
    with pytest.raises(RegistryError, match="dataset name .* refused|dataset: Input should be"):
        registry.publish({"model.bin": b"m"}, {"dataset": name})
    assert registry.versions() == []


@pytest.mark.parametrize("name", ["lauki_synthetic", "german_credit", "sba", "SBA 7(a) loans",
                                  "x" * 100])
def test_ordinary_dataset_names_are_valid(name):
    assert valid_dataset(name)


def test_a_hand_made_version_named_for_a_path_is_never_promoted(store):
    registry = Registry(store.url)
    good = _publish(registry, "lauki")
    manifest = registry.manifest(good)
    bad = "20990101T000000.000000Z-evil00"
    for name in ("model.bin", "card.md"):
        store.write(f"models/{bad}/{name}", store.read(f"models/{good}/{name}"))
    store.write(f"models/{bad}/manifest.json",
                json.dumps({**manifest, "version": bad, "dataset": "../../aliases"}))
    assert bad in registry.versions()  # listed (for analysis)...
    with pytest.raises(RegistryError, match="dataset name '../../aliases' refused"):
        registry.promote(bad, "attack")  # ...never promoted
    with pytest.raises(RegistryError, match="not a dataset name"):
        registry.alias_version("champion", "../../aliases")
    assert registry.aliases() == {}


def _next_record(registry, store, edit):
    """A record of the chain's next link, unsigned (no keys: anyone who writes the registry
    can add one), with `edit(record)` applied."""
    head = registry.chain.read().head
    record = {**head.body(), "seq": head.seq + 1, "parent": head.digest(), "change": "e" * 32}
    edit(record)
    store.write(f"history/{head.seq + 1:010d}.json", json.dumps(record))


def test_a_record_with_a_dataset_named_for_a_path_is_rejected(store):
    registry = Registry(store.url)
    a1, a2, b1 = _two_datasets(registry)
    _next_record(registry, store, lambda r: r["datasets"].update(
        {"../evil": r["datasets"].pop("sba")}))
    reopened = Registry(store.url)
    assert set(reopened.aliases()) == {"lauki", "sba"}
    assert reopened.alias_version("champion", "sba") == b1
    assert "dataset name '../evil' refused" in reopened.rejected_history()[0]["reason"]


def test_a_record_claiming_a_version_of_another_dataset_moves_nothing(store):
    """Without keys anyone who writes the registry can add a record: sba's previous names a
    lauki model. Rollback to it is refused, and serving and predict refuse it (see
    tests/registry/test_serving_datasets.py)."""
    registry = Registry(store.url)
    a1, a2, b1 = _two_datasets(registry)
    b2 = _publish(registry, "sba", b"b2")
    registry.promote(b2, "second sba")
    _next_record(registry, store, lambda r: r["datasets"]["sba"]["previous"].update(
        version=a1))  # a lauki model as sba's previous
    assert registry.alias_version("previous", "sba") == a1
    with pytest.raises(RegistryError, match="model of dataset 'lauki', not of 'sba'"):
        registry.rollback("to the forged previous", dataset="sba")
    assert registry.alias_version("champion", "sba") == b2
    assert registry.alias_version("champion", "lauki") == a2


def test_a_crash_between_history_and_state_is_completed_per_dataset(store):
    registry = Registry(store.url)
    a1, a2, b1 = _two_datasets(registry)
    before = store.read("aliases/state.json")
    b2 = _publish(registry, "sba", b"b2")
    registry.promote(b2, "second sba")
    store.write("aliases/state.json", before)  # killed between history and state.json
    reopened = Registry(store.url)
    assert (reopened.alias_version("champion", "sba"),
            reopened.alias_version("previous", "sba")) == (b2, b1)
    assert reopened.alias_version("champion", "lauki") == a2


def test_signed_alias_records_per_dataset(store, tmp_path):
    private, public, _ = signing.generate(tmp_path / "keys")
    trusted = [signing.load_public_key(public)]
    signer = Registry(store.url, signing_key=signing.load_private_key(private),
                      trusted_keys=trusted)
    a1, a2, b1 = _two_datasets(signer)
    serving = Registry(store.url, trusted_keys=trusted, dataset="sba")
    assert serving.alias_version("champion") == b1
    head = json.loads(store.read("history/0000000003.json"))  # edited in place: sba -> lauki
    head["datasets"]["sba"]["champion"]["version"] = a2
    store.write("history/0000000003.json", json.dumps(head))
    assert serving.alias_version("champion") == b1  # the edit moves nothing
    fresh = Registry(store.url, trusted_keys=trusted, dataset="sba")
    assert fresh.alias_version("champion") == b1 and fresh.alias_version("champion", "lauki") \
        == a1  # the edited record is not on the chain
    assert "signature does not match" in fresh.rejected_history()[0]["reason"]


# -- the CLI ---------------------------------------------------------------------------------------
def test_models_list_groups_by_dataset_and_rollback_names_one(store, monkeypatch, capsys):
    registry = Registry(store.url)
    a1, a2, b1 = _two_datasets(registry)
    b2 = _publish(registry, "sba", b"b2")
    monkeypatch.setenv("CREDIT_RISK_REGISTRY_URL", store.url)
    monkeypatch.delenv("CREDIT_RISK_DATASET", raising=False)
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    lauki, sba = out.split("dataset sba:")
    assert lauki.startswith(f"dataset lauki: champion {a2}, previous {a1}")
    assert sba.startswith(f" champion {b1}, previous -")
    assert a1 in lauki and a2 in lauki and b1 not in lauki and b2 not in lauki
    assert b1 in sba and b2 in sba and a1 not in sba
    assert next(line for line in sba.splitlines() if line.startswith(b1)).endswith("champion")
    assert main(["models", "list", "--dataset", "sba"]) == 0
    only = capsys.readouterr().out
    assert "dataset sba" in only and "lauki" not in only and a1 not in only

    assert main(["models", "promote", b2, "--reason", "r", "--dataset", "lauki"]) == 1
    assert "not of 'lauki'" in capsys.readouterr().err
    assert main(["models", "promote", b2, "--reason", "better", "--dataset", "sba"]) == 0
    assert f"champion of sba is now {b2}" in capsys.readouterr().out
    assert main(["models", "rollback", "--reason", "which?"]) == 1
    assert "several datasets" in capsys.readouterr().err
    assert main(["models", "rollback", "--reason", "oops", "--dataset", "sba"]) == 0
    assert f"champion of sba is now {b1}" in capsys.readouterr().out
    monkeypatch.setenv("CREDIT_RISK_DATASET", "lauki")
    assert main(["models", "rollback", "--reason", "from the settings"]) == 0
    assert f"champion of lauki is now {a1}" in capsys.readouterr().out
    assert main(["models", "history", "--dataset", "sba"]) == 0
    history = capsys.readouterr().out
    assert "rollback: oops" in history and "from the settings" not in history
    assert all(" sba " in line for line in history.splitlines())


# -- concurrent writers of different datasets (S3: conditional writes, no lock) --------------------
@pytest.mark.parametrize("moment", ["/history/", "/aliases/state.json"])
def test_two_writers_promoting_different_datasets_lose_no_update(s3_url, monkeypatch, moment):
    """A promotes lauki while B promotes sba in the middle of A's change (after A read the
    state: before its history record, or before its state.json write): both promotions are in
    the final state, as one linear chain."""
    url = f"{s3_url}/reg"
    a, b = Registry(url), Registry(url)
    a0, a1 = _publish(a, "lauki", b"a0"), _publish(a, "lauki", b"a1")
    b0 = _publish(a, "sba", b"b0")
    a.promote(a0, "start")
    put, raced = a.storage.put, []

    def interleaved(path, data, create=False, etag=None):
        if moment in path and not raced:
            raced.append(path)
            b.promote(b0, "B, another dataset")
        return put(path, data, create=create, etag=etag)

    monkeypatch.setattr(a.storage, "put", interleaved)
    a.promote(a1, "A")
    assert raced
    reader = Registry(url)
    assert (reader.alias_version("champion", "lauki"),
            reader.alias_version("previous", "lauki")) == (a1, a0)
    assert reader.alias_version("champion", "sba") == b0
    chain = reader.chain.read()
    assert [r.seq for r in chain.records] == [1, 2, 3] and not chain.rejected
    assert set(chain.head.datasets) == {"lauki", "sba"}
