"""A special file in a version's folder must not freeze or exhaust a reader: a FIFO (opening it
blocks), a symlink to /dev/zero (endless), a sparse multi-gigabyte file. Each is refused
quickly and in little memory, by verify, read_file and the listing, in a child process with a
memory limit and a timeout (before the fix: a hang, a MemoryError, gigabytes read)."""

import json
import os
import subprocess
import sys

import pytest

from credit_risk.registry import ChecksumError, Registry, RegistryError

CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
from credit_risk.registry import Registry

registry = Registry(sys.argv[1])
version, name = sys.argv[2], sys.argv[3]
out = {}
for attempt in ("verify", "read_file", "versions"):
    try:
        if attempt == "verify":
            registry.verify(version)
        elif attempt == "read_file":
            registry.read_file(version, name)
        else:
            out["listed"] = registry.versions()
    except Exception as exc:
        out[attempt] = f"{type(exc).__name__}: {exc}"
    else:
        out[attempt] = "accepted"
# VmHWM: this process image's peak RSS (ru_maxrss would carry the forking parent's over exec)
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
out["max_rss_mb"] = int(peak.split()[1]) / 1024
print(json.dumps(out))
"""


def _publish(registry):
    return registry.publish({"model.bin": b"m" * 1000, "model_card.md": b"# card"},
                            {"dataset": "d"})


def _in_child(url, version, name):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, url, version, name],
                             capture_output=True, text=True, timeout=30, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("the registry hung on a special file")
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.mark.parametrize("kind", ["fifo", "dev_zero_symlink", "sparse_3g", "manifest_fifo",
                                  "manifest_sparse"])
def test_a_special_file_is_refused_quickly_and_in_little_memory(tmp_path, kind):
    url = str(tmp_path / "reg")
    registry = Registry(url)
    keep = _publish(registry)
    version = _publish(registry)
    folder = tmp_path / "reg" / "models" / version
    target = folder / ("manifest.json" if kind.startswith("manifest") else "model_card.md")
    target.unlink()
    if kind in ("fifo", "manifest_fifo"):
        os.mkfifo(target)
    elif kind == "dev_zero_symlink":
        target.symlink_to("/dev/zero")
    else:
        with target.open("wb") as fh:
            fh.truncate(3 << 30 if kind == "sparse_3g" else 200 << 20)
    out = _in_child(url, version, "model_card.md")
    for attempt in ("verify", "read_file"):
        assert out[attempt].startswith(("ChecksumError", "RegistryError")), out
    expected = {"fifo": "a FIFO, not a regular file", "dev_zero_symlink": "symbolic link",
                "sparse_3g": "3221225472 bytes, the manifest lists 6",
"manifest_fifo": "a FIFO",
                "manifest_sparse": "over the limit"}[kind]
    assert expected in out["verify"], out
    # The listing reads manifests only: it skips a bad one, and does not hang either.
    assert out["listed"] == ([keep] if kind.startswith("manifest") else [keep, version]), out
    assert out["max_rss_mb"] < 400, out


def test_a_symlink_to_identical_content_is_refused(tmp_path):
    registry = Registry(str(tmp_path / "reg"))
    version = _publish(registry)
    card = tmp_path / "reg" / "models" / version / "model_card.md"
    outside = tmp_path / "card.md"
    outside.write_bytes(card.read_bytes())
    card.unlink()
    card.symlink_to(outside)
    with pytest.raises(ChecksumError, match="symbolic link"):
        registry.verify(version)
    with pytest.raises(ChecksumError, match="symbolic link"):
        registry.read_file(version, "model_card.md")


def test_sizes_are_recorded_and_a_size_change_is_refused_before_reading(tmp_path):
    registry = Registry(str(tmp_path / "reg"))
    version = _publish(registry)
    assert registry.manifest(version)["sizes"] == {"model.bin": 1000, "model_card.md": 6}
    (tmp_path / "reg" / "models" / version / "model.bin").write_bytes(b"m" * 1001)
    with pytest.raises(ChecksumError, match="1001 bytes, the manifest lists 1000"):
        registry.verify(version)


def test_verify_hashes_in_chunks_without_holding_the_files(tmp_path):
    import tracemalloc

    registry = Registry(str(tmp_path / "reg"))
    big = os.urandom(1 << 20) * 24  # 24 MB
    version = registry.publish({"big.bin": big}, {"dataset": "d"})
    del big
    tracemalloc.start()
    registry.verify(version)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_a_file_name_that_leaves_the_version_folder_is_refused(tmp_path):
    registry = Registry(str(tmp_path / "reg"))
    with pytest.raises(RegistryError, match="not a file name"):
        registry.publish({"../escape": b"x"}, {"dataset": "d"})
    version = _publish(registry)
    path = tmp_path / "reg" / "models" / version / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"]["../../aliases/state.json"] = "0" * 64
    path.write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match="file list is malformed"):
        registry.verify(version)
    assert registry.versions() == []


def test_an_object_store_checks_type_and_size_before_reading(tmp_path):
    """The same bounds through fsspec's info() on a non-local filesystem (memory://)."""
    registry = Registry(f"memory://{tmp_path.name}-reg")
    version = _publish(registry)
    fs, base = registry.storage.fs, registry.storage.path("models", version)
    with fs.open(f"{base}/model.bin", "wb") as fh:
        fh.write(b"m" * 5000)
    with pytest.raises(ChecksumError, match="5000 bytes, the manifest lists 1000"):
        registry.verify(version)
    fs.rm(f"{base}/model_card.md")
    fs.makedirs(f"{base}/model_card.md", exist_ok=True)
    with pytest.raises(ChecksumError, match="a directory, not a file"):
        registry.read_file(version, "model_card.md")
    with fs.open(registry.storage.path("history", "0000000001.json"), "wb") as fh:
        fh.write(b"{")
    assert registry.history() == [] and registry.alias_version("champion") is None
