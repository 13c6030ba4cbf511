"""Serving image benchmark: build, size, start time (issue 12's before/after numbers).

    python benchmarks/bench_image.py [--runs 3] [--registry DIR] [--json out.json]

For the current checkout: builds the serving image with BuildKit on the local base image
(docker/base-image.sh, or --base-image), then reports
  - the image size (`docker image inspect .Size`) and site-packages split by top package;
  - start time: `docker run` -> first 200 on /ready, with the image's own CMD (median of
    --runs);
  - per-worker boot: gunicorn's post_fork -> post_worker_init (import + model load), from a
    config that execs serving/gunicorn.conf.py and only adds those two logging hooks;
  - import cost: `python -X importtime -c 'import serving.wsgi'` inside the container.
Without --registry a small one is made with the checkout's `credit-risk` console script
(3000 customers, xgboost, 2 folds x 1 setting). Only stdlib; calls /usr/bin/docker.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")  # Debian's CLI: BuildKit built in
CA = "/etc/ssl/certs/ca-certificates.crt"

# Exec the image's gunicorn config, then log each worker's boot time (fork -> app loaded).
HOOKS = """\
import time
exec(compile(open("/app/serving/gunicorn.conf.py").read(), "gunicorn.conf.py", "exec"))
_forked = {}
def post_fork(server, worker):
    _forked[worker.pid] = time.monotonic()
def post_worker_init(worker):
    import os
    worker.log.info("BENCH worker %d booted in %.3f s", os.getpid(),
                    time.monotonic() - _forked.get(os.getpid(), time.monotonic()))
"""


def sh(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, text=True, capture_output=True, **kw)


def docker(*args: str, **kw) -> subprocess.CompletedProcess:
    return sh(DOCKER, *args, **kw)


def build(base: str, tag: str) -> float:
    t0 = time.monotonic()
    cmd = [DOCKER, "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
           "-t", tag, "."]
    if os.path.exists(CA):
        cmd[2:2] = ["--secret", f"id=ca,src={CA}"]
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "DOCKER_BUILDKIT": "1"},
                   stdout=sys.stderr)
    return time.monotonic() - t0


def make_registry(workdir: Path) -> Path:
    cli = shutil.which("credit-risk", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if not cli:
        sys.exit("no credit-risk console script: run with the project's venv python, "
                 "or pass --registry")
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "CREDIT_RISK_DATA_DIR": str(workdir / "data"),
           "CREDIT_RISK_REGISTRY_URL": str(workdir / "registry"),
           "CREDIT_RISK_RUNS_DIR": str(workdir / "runs"),
           "CREDIT_RISK_MODELS": '["xgboost"]', "CREDIT_RISK_CV_FOLDS": "2",
           "CREDIT_RISK_SEARCH_ITERATIONS": "1"}
    subprocess.run([cli, "generate-data", "--customers", "3000"], check=True, env=env,
                   stdout=sys.stderr)
    subprocess.run([cli, "train"], check=True, env=env, stdout=sys.stderr)
    return workdir / "registry"


def wait_ready(port: int, t0: float, timeout: float = 120.0) -> float:
    while time.monotonic() - t0 < timeout:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"/ready not 200 within {timeout:.0f} s")


def start_once(tag: str, registry: Path, port: int, extra: list[str], cmd: list[str]):
    name = f"bench-image-{os.getpid()}-{port}"
    t0 = time.monotonic()
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000",
           "-v", f"{registry}:/registry:ro", *extra, tag, *cmd)
    try:
        ready = wait_ready(port, t0)
        time.sleep(0.5)  # the other workers may finish booting a little later
        out = docker("logs", name)
        logs = out.stdout + out.stderr
    finally:
        subprocess.run([DOCKER, "rm", "-f", name], capture_output=True)
    boots = [float(s) for s in re.findall(r"BENCH worker \d+ booted in ([\d.]+) s", logs)]
    return ready, boots


def sizes(tag: str) -> dict:
    size = int(docker("image", "inspect", "-f", "{{.Size}}", tag).stdout)
    listing = docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}", tag).stdout
    out = docker("run", "--rm", "--entrypoint", "sh", tag, "-c",
                 'sp=$(python -c "import sysconfig; print(sysconfig.get_paths()[\'purelib\'])");'
                 ' cd "$sp" && du -sk . && du -sk -- * | sort -rn | head -20').stdout.split("\n")
    total = int(out[0].split()[0])
    top = {name: int(k) for k, name in (line.split("\t", 1) for line in out[1:] if line)}
    return {"image_bytes": size, "docker_images": listing.strip(),
            "site_packages_kib": total, "top_packages_kib": top}


def importtime(tag: str, registry: Path) -> dict:
    def run_python(*argv: str) -> subprocess.CompletedProcess:
        # as in a worker: the metrics folder that gunicorn's on_starting creates
        return docker("run", "--rm", "-v", f"{registry}:/registry:ro", "--entrypoint", "sh",
                      tag, "-c", 'mkdir -p "$PROMETHEUS_MULTIPROC_DIR" && exec python "$@"',
                      "python", *argv)

    err = run_python("-X", "importtime", "-c", "import serving.wsgi").stderr
    self_us: dict[str, int] = {}  # self time summed by top-level package: a split that adds up
    cumulative_us: dict[str, int] = {}  # a package's own line: with what it imports
    for line in err.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| *(\S+)", line)
        if m:
            pkg = m[3].split(".")[0]
            self_us[pkg] = self_us.get(pkg, 0) + int(m[1])
            cumulative_us[m[3]] = max(cumulative_us.get(m[3], 0), int(m[2]))
    # The whole `import serving.wsgi` without -X importtime: imports + create_app (model load).
    # CPU time hardly depends on the machine's other load (wall time does); RSS = one worker's.
    probe = ("import resource, time; t = time.perf_counter(); import serving.wsgi; "
             "u = resource.getrusage(resource.RUSAGE_SELF); "
             "print(time.perf_counter() - t, u.ru_utime + u.ru_stime, u.ru_maxrss)")
    wall, cpu, rss_kib = map(float, run_python("-c", probe).stdout.split()[-3:])
    top = sorted(self_us.items(), key=lambda kv: -kv[1])[:15]
    return {"importtime_serving_wsgi_s": round(cumulative_us.get("serving.wsgi", 0) / 1e6, 3),
            "importtime_self_by_package_s": {k: round(v / 1e6, 3) for k, v in top},
            "importtime_cumulative_s": {k: round(cumulative_us[k] / 1e6, 3) for k, _ in top
                                        if k in cumulative_us},
            "import_serving_wsgi_wall_s": round(wall, 3),
            "import_serving_wsgi_cpu_s": round(cpu, 3),  # whole process, interpreter start included
            "worker_rss_mib_after_import": round(rss_kib / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--registry", type=Path, help="a published registry folder")
    ap.add_argument("--base-image", help="default: the output of docker/base-image.sh")
    ap.add_argument("--tag", help="default: credit-risk-serving:<git sha>")
    ap.add_argument("--no-build", action="store_true", help="measure an existing --tag")
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    sha = sh("git", "rev-parse", "--short", "HEAD", cwd=ROOT).stdout.strip()
    dirty = bool(sh("git", "status", "--porcelain", "--untracked-files=no", cwd=ROOT).stdout)
    tag = args.tag or f"credit-risk-serving:{sha}"
    base = args.base_image or sh(str(ROOT / "docker" / "base-image.sh")).stdout.strip()
    result: dict = {"commit": sha, "dirty": dirty, "tag": tag, "base_image": base,
                    "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpus": os.cpu_count(),
                    "loadavg_1m_at_start": round(os.getloadavg()[0], 2)}
    if not args.no_build:
        result["build_s"] = round(build(base, tag), 1)
    result.update(sizes(tag))

    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        registry = args.registry.resolve() if args.registry else make_registry(Path(tmp))
        subprocess.run(["chmod", "-R", "a+rX", str(registry)], check=True)  # uid 10001 reads
        hooks = Path(tmp) / "gunicorn.bench.py"
        hooks.write_text(HOOKS)
        hooks.chmod(0o644)
        Path(tmp).chmod(0o755)
        ready, boots = [], []
        for i in range(args.runs):  # the image exactly as shipped
            ready.append(start_once(tag, registry, args.port + i, [], [])[0])
        for i in range(args.runs):  # same, with the boot-time hooks
            r, b = start_once(tag, registry, args.port + args.runs + i,
                              ["-v", f"{hooks}:/bench/gunicorn.bench.py:ro"],
                              ["gunicorn", "-c", "/bench/gunicorn.bench.py", "serving.wsgi:app"])
            boots += b
        result["start_to_ready_s"] = [round(s, 3) for s in ready]
        result["start_to_ready_median_s"] = round(statistics.median(ready), 3)
        result["start_to_ready_min_s"] = round(min(ready), 3)  # least disturbed by other load
        result["worker_boot_s"] = [round(s, 3) for s in boots]
        result["worker_boot_median_s"] = round(statistics.median(boots), 3) if boots else None
        result.update(importtime(tag, registry))

    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
