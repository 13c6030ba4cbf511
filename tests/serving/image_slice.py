"""The serving image's files, read from the Dockerfile: what its build stage COPYs from the
build context (the repository's root), placed as Docker places them."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_STAGE = "build-serving"


def instructions(text: str) -> list[str]:
    """A Dockerfile's instructions, continuation lines joined, comments left out."""
    out: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append(" ".join((pending + line).split()))
        pending = ""
    return out


def stage(text: str, name: str) -> list[str]:
    """The instructions of one build stage (from its FROM to the next FROM)."""
    found: list[str] | None = None
    for instruction in instructions(text):
        if instruction.startswith("FROM "):
            if found is not None:
                break
            if instruction.endswith(f" AS {name}"):
                found = []
            continue
        if found is not None:
            found.append(instruction)
    assert found is not None, f"no stage {name}"
    return found


def context_copies(text: str, name: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context in a stage."""
    copies = []
    for instruction in stage(text, name):
        words = instruction.split()
        if words[0] == "COPY" and not any(w.startswith("--from=") for w in words[1:]):
            args = [w for w in words[1:] if not w.startswith("--")]
            copies.append((args[:-1], args[-1]))
    return copies


def copy_serving_slice(target: Path, root: Path = ROOT) -> list[str]:
    """Copy what the serving build stage COPYs into `target` (its WORKDIR); the files copied,
    relative to `target`. A missing source fails, as it fails the build."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for sources, dest in context_copies((root / "Dockerfile").read_text(), BUILD_STAGE):
        for source in sources:
            src = root / source
            assert src.exists(), f"the Dockerfile copies {source}, which does not exist"
            if src.is_dir():  # a folder's contents go into the destination
                shutil.copytree(src, target / dest, ignore=ignore, dirs_exist_ok=True)
            else:
                to = target / dest / src.name if dest.endswith("/") else target / dest
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, to)
    return sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
