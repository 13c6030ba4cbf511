"""SIGKILL publish, promote and rollback at random points; the registry stays consistent."""

import json
import os
import random
import signal
import subprocess
import sys
import time

from credit_risk.registry import Registry

CHILD = r"""
import json, random, sys
from credit_risk.registry import Registry

registry = Registry(sys.argv[1])
rng = random.Random(int(sys.argv[3]))
journal = open(sys.argv[2], "a")

def state():
    return [registry.alias_version("champion"), registry.alias_version("previous")]

print("ready", flush=True)
while True:
    op = rng.choice(["publish", "promote", "promote", "rollback"])
    before = state()
    versions = registry.versions()
    if op == "publish":
        entry = {"op": op, "before": before, "after": before}
    elif op == "promote":
        target = rng.choice(versions)
        after = before if target == before[0] else [target, before[0]]
        entry = {"op": op, "target": target, "before": before, "after": after}
    else:
        entry = {"op": op, "before": before, "after": [before[1], before[0]]}
    journal.write(json.dumps(entry) + "\n")
    journal.flush()
    if op == "publish":
        registry.publish({"model.bin": rng.randbytes(20_000), "card.md": b"# card"},
                         {"dataset": "d"})
    elif op == "promote":
        registry.promote(entry["target"], "crash test", by="child")
    else:
        registry.rollback("crash test", by="child")
    journal.write(json.dumps({"done": True}) + "\n")
    journal.flush()
"""


def _last_entry(journal):
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    if not lines or lines[-1].get("done"):
        return None, True
    return lines[-1], False


def _check(registry, entry, finished):
    versions = registry.versions()
    for v in versions:  # no partial version is listed: every file is there and whole
        manifest = registry.verify(v)
        assert set(manifest["files"]) == {"model.bin", "card.md"}
    champion, previous = registry.alias_version("champion"), registry.alias_version("previous")
    assert champion in versions and previous in versions, (champion, previous, versions)
    assert champion != previous, "champion and previous point to the same version"
    state = [champion, previous]
    if entry is not None:  # the killed operation happened wholly or not at all
        assert state in (entry["before"], entry["after"]), (entry, state)
    if finished is not None:
        assert state == finished["after"], (finished, state)
    last = {}
    for record in registry.history():  # every alias change is in the history
        last[record["alias"]] = record["version"]
    assert last.get("champion") == champion and last.get("previous") == previous, (last, state)
    return state


def test_random_kills_leave_a_consistent_registry(tmp_path):
    url = str(tmp_path / "reg")
    journal = tmp_path / "journal.jsonl"
    journal.touch()
    setup = Registry(url)
    v1 = setup.publish({"model.bin": b"1", "card.md": b"# card"}, {"dataset": "d"})
    v2 = setup.publish({"model.bin": b"2", "card.md": b"# card"}, {"dataset": "d"})
    setup.promote(v1, "start")
    setup.promote(v2, "start")
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    kills, rollbacks, start = 0, 0, time.monotonic()
    last_done = None
    while kills < 120 and time.monotonic() - start < 75:
        child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(journal), str(kills)],
                                 stdout=subprocess.PIPE, env=env)
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0, 0.06))
        child.send_signal(signal.SIGKILL)
        child.wait()
        kills += 1
        entry, done = _last_entry(journal)
        if done:  # killed between two operations: the last one must be in force
            lines = journal.read_text().splitlines()
            last_done = json.loads(lines[-2]) if len(lines) >= 2 else None
        registry = Registry(url)  # a fresh open reconciles what the kill left
        champion, previous = _check(registry, entry, last_done if done else None)
        # The operator's rollback always returns to the version before.
        assert registry.rollback("operator check", by="test") == previous
        assert [registry.alias_version("champion"), registry.alias_version("previous")] == [
            previous, champion]
        rollbacks += 1
        with journal.open("a") as fh:  # the parent's rollback is the state the next child sees
            fh.write(json.dumps({"op": "rollback", "before": [champion, previous],
                                 "after": [previous, champion]}) + "\n")
            fh.write(json.dumps({"done": True}) + "\n")
    elapsed = time.monotonic() - start
    print(f"{kills} kills, {rollbacks} rollbacks in {elapsed:.1f} s")
    assert kills >= 100
