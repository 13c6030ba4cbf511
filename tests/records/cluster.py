"""A throwaway PostgreSQL cluster that a test may stop, start and fill up (initdb + pg_ctl on a
free port, run as the `postgres` user, since initdb refuses root): the shared server on 5432
is never touched."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.serving.servers import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    assert found[-1], f"PostgreSQL's {name} is needed for the fault tests"
    return str(found[-1])


class Cluster:
    """A cluster in a temporary folder; `start()`, `stop()`; `url(schema)` for the app."""

    def __init__(self, max_connections: int = 20):
        self.port = free_port()
        self.max_connections = max_connections
        self.root = Path(tempfile.mkdtemp(prefix="credit-risk-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.conninfo = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{' '.join(args)}: {result.stdout}{result.stderr}"

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(_bin("initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   f"-c max_connections={self.max_connections} "
                   "-c superuser_reserved_connections=1")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        """`immediate`: the server processes quit at once (a crash; committed rows survive
        through the WAL), `fast`: a clean shutdown."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except AssertionError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, user: str = "postgres", **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"application_name": "credit-risk-app",
                                                  **options}.items())
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/postgres?{query}"

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []
