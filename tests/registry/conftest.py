"""The registry tests run on a local folder and on S3 (moto's server, see tests/conftest.py
s3_server): `store` gives the registry URL and file access by path inside it, for either."""

from __future__ import annotations

import fsspec
import pytest


class Store:
    """A registry's URL and its raw files, by path relative to the registry root (what an
    attacker, a crash or an older release leaves there)."""

    def __init__(self, url: str):
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url, use_listings_cache=False)
        self.s3 = not url.startswith("/")

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def write(self, rel: str, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        if not self.s3:
            self.fs.makedirs(self.path(rel).rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(self.path(rel), data)

    def read(self, rel: str) -> bytes:
        return self.fs.cat_file(self.path(rel))

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def rm(self, rel: str) -> None:
        self.fs.rm(self.path(rel))

    def names(self, rel: str) -> list[str]:
        """The file names in a folder, sorted; [] when there is none."""
        if not self.fs.exists(self.path(rel)):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1]
                      for p in self.fs.ls(self.path(rel), detail=False))

    def rename(self, rel: str, new: str) -> None:
        data = self.read(rel)
        self.rm(rel)
        self.write(new, data)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> Store:
    if request.param == "local":
        return Store(str(tmp_path / "reg"))
    return Store(request.getfixturevalue("s3_url") + "/reg")
