"""deploy/deploy.sh for real: the local Docker engine stands in for the EC2 host and Debian's
`docker-registry` on loopback for ECR. Deploy tag A, then tag B under a running request loop
(no failed request), then a broken tag C that never becomes ready: the script exits non-zero
and B is serving again, still without a failed request; the same when B's container is gone
(started again from its image); and `deploy.sh --rollback`.

The serving image is built from the Dockerfile's `serving` target on the local base image
(docker/base-image.sh; BuildKit's cache keeps rebuilds cheap, and the stack test shares it);
B is A with another label and environment, C is A with a command that never serves. The
containers load the `trained` fixture's registry, mounted read-only. Needs root (or the docker
group) and `make deploy-tools` (docker-registry, jq, actionlint); runs in about a minute once the
image is cached.
"""

import contextlib
import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = "/usr/bin/docker"  # Debian's CLI (BuildKit built in); see docker/base-image.sh
DEPLOY = ROOT / "deploy" / "deploy.sh"
IMAGE = "credit-risk-serving:deploy-test"
PROXY_IMAGE = "credit-risk/nginx:deploy-test"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APPLICATION = json.loads((ROOT / "examples" / "application.json").read_text())


def sh(*cmd, timeout=900, check=True, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                         timeout=timeout, **kw)
    if check and out.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n"
                    f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(tag: str, dockerfile: str | None = None, *args: str) -> None:
    """`docker build` with BuildKit: the project's Dockerfile (dockerfile=None, context = the
    repo) or a small Dockerfile on stdin without context."""
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    if dockerfile is None:
        secrets = ["--secret", f"id=ca,src={CA_BUNDLE}"] if CA_BUNDLE.exists() else []
        sh(DOCKER, "build", "-q", "--network", "host", *secrets, *args, "-t", tag, ROOT,
           env=env, timeout=1800)
    else:
        sh(DOCKER, "build", "-q", "--network", "host", *args, "-t", tag, "-",
           input=dockerfile, env=env)


@pytest.fixture(scope="module")
def images():
    """The base image (and a running engine), the serving image, and the proxy image (Debian's
    nginx on the same base; on EC2 the default is the official nginx image)."""
    if shutil.which("docker-registry") is None:
        pytest.fail("Debian's docker-registry is not installed: run `make deploy-tools`")
    base = sh("bash", ROOT / "docker" / "base-image.sh", timeout=900).stdout.strip()
    build(IMAGE, None, "--target", "serving", "--build-arg", f"BASE_IMAGE={base}")
    build(PROXY_IMAGE, f"FROM {base}\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive"
          " apt-get install -y -qq --no-install-recommends nginx-light"
          " && rm -rf /var/lib/apt/lists/*\n")
    return IMAGE


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Debian's docker-registry on a free loopback port (Docker trusts 127.0.0.0/8 over plain
    HTTP). Its storage stays in var/ between runs, so that unchanged layers are not pushed
    again. Yields host:port."""
    storage = ROOT / "var" / "deploy-test" / "registry"
    storage.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = tmp_path_factory.mktemp("registry") / "config.yml"
    config.write_text(f"version: 0.1\nlog: {{level: warn}}\nstorage:\n"
                      f"  filesystem: {{rootdirectory: {storage}}}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/v2/")
                if conn.getresponse().status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"docker-registry did not start: {proc.stderr.read().decode()}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def tags(images, registry):
    """A, B and C pushed to the local registry, then untagged locally: deploy.sh must pull."""
    repo = f"{registry}/credit-risk-serving"
    refs = {"a": f"{repo}:a-{uuid.uuid4().hex[:6]}", "b": f"{repo}:b-{uuid.uuid4().hex[:6]}",
            "c": f"{repo}:c-{uuid.uuid4().hex[:6]}"}
    build(refs["a"], f"FROM {images}\nLABEL org.credit-risk.test=a\n")
    build(refs["b"], f"FROM {images}\nLABEL org.credit-risk.test=b\n"
                     "ENV CREDIT_RISK_TEST_RELEASE=b\n")
    # Broken: the process runs but never serves (not ready).
    build(refs["c"], f'FROM {images}\nLABEL org.credit-risk.test=c\nCMD ["sleep", "infinity"]\n')
    for ref in refs.values():
        sh(DOCKER, "push", "-q", ref)
        sh(DOCKER, "rmi", ref)
    return refs


@pytest.fixture
def host(trained, tmp_path):
    """What deploy.sh finds on the instance: its config in the environment, the app's env file,
    the model registry (read-only into the containers). Removes what the deploys started."""
    settings, _ = trained
    registry = tmp_path / "registry"
    shutil.copytree(settings.registry.url, registry)
    for path in [registry, *registry.rglob("*")]:  # the app runs as uid 10001
        path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
    env_file = tmp_path / "serving.env"
    env_file.write_text("CREDIT_RISK_REGISTRY_URL=/registry\nCREDIT_RISK_WORKERS=2\n")
    name = f"crtest-{uuid.uuid4().hex[:6]}"
    port = free_port()
    env = {**os.environ, "DOCKER": DOCKER, "DEPLOY_CONFIG": str(tmp_path / "no-config"),
           "DEPLOY_NAME": name, "DEPLOY_PORT": str(port), "DEPLOY_BIND": "127.0.0.1",
           "DEPLOY_STATE_DIR": str(tmp_path / "state"), "DEPLOY_ENV_FILE": str(env_file),
           "DEPLOY_RUN_ARGS": f"-v {registry}:/registry:ro",
           "DEPLOY_PROXY_IMAGE": PROXY_IMAGE, "DEPLOY_READY_TIMEOUT": "90",
           "DEPLOY_DRAIN_S": "2", "DEPLOY_STOP_TIMEOUT": "20"}
    yield {"env": env, "port": port, "name": name}
    for suffix in ("proxy", "blue", "green"):
        subprocess.run([DOCKER, "rm", "-f", f"{name}-{suffix}"], capture_output=True)
    subprocess.run([DOCKER, "network", "rm", name], capture_output=True)


def deploy(host, *args, **env) -> subprocess.CompletedProcess:
    return sh("bash", DEPLOY, *args, env={**host["env"], **env}, check=False, timeout=600)


def status(host) -> dict:
    out = deploy(host, "--status")
    return dict(line.split("=", 1) for line in out.stdout.split())


def app_containers(host) -> dict:
    """Running app containers of this test: name -> the image reference they run."""
    names = sh(DOCKER, "ps", "--filter", "label=org.credit-risk.deploy.slot",
               "--filter", f"name={host['name']}-", "--format", "{{.Names}}").stdout.split()
    return {n: sh(DOCKER, "inspect", "-f", "{{.Config.Image}}", n).stdout.strip()
            for n in names}


def predict(port: int) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/api/v1/predict", body=json.dumps(APPLICATION),
                     headers={"Content-Type": "application/json", "Connection": "close"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


class RequestLoop:
    """Scores the example application through the proxy, one connection per request, without
    pause, until stopped; counts answers and failures (anything but a 200 with a PD)."""

    def __init__(self, port: int):
        self.port, self.ok, self.failures = port, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                code, body = predict(self.port)
                if code == 200 and "probability_of_default" in body:
                    self.ok += 1
                else:
                    self.failures.append(f"{code} {body}")
            except Exception as exc:  # every failure counts
                self.failures.append(repr(exc))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)


def test_deploy_switch_and_rollback(tags, host):
    port = host["port"]

    # A: the first deploy starts the proxy and the blue slot.
    first = deploy(host, tags["a"])
    assert first.returncode == 0, first.stderr
    code, body = predict(port)
    assert code == 200 and 0 <= body["probability_of_default"] <= 1, body
    assert status(host) == {"slot": "blue", "current": tags["a"], "previous": ""}
    assert app_containers(host) == {f"{host['name']}-blue": tags["a"]}

    # B under load: zero failed requests, A stopped afterwards.
    with RequestLoop(port) as loop:
        time.sleep(1)
        second = deploy(host, tags["b"])
        time.sleep(1)
    assert second.returncode == 0, second.stderr
    assert loop.failures == [], loop.failures[:5]
    assert loop.ok > 20, loop.ok
    print(f"A -> B: {loop.ok} requests, none failed")
    assert status(host) == {"slot": "green", "current": tags["b"], "previous": tags["a"]}
    assert app_containers(host) == {f"{host['name']}-green": tags["b"]}

    # C never becomes ready: non-zero exit, B keeps serving, no request fails meanwhile.
    with RequestLoop(port) as loop:
        third = deploy(host, tags["c"], DEPLOY_READY_TIMEOUT="15")
    assert third.returncode != 0
    assert "not ready after 15s" in third.stderr and "rolled back" in third.stderr, third.stderr
    assert loop.failures == [], loop.failures[:5]
    assert loop.ok > 10, loop.ok
    print(f"B -> C (rolled back): {loop.ok} requests, none failed")
    assert status(host) == {"slot": "green", "current": tags["b"], "previous": tags["a"]}
    assert app_containers(host) == {f"{host['name']}-green": tags["b"]}
    assert predict(port)[0] == 200

    # The live container gone (crashed, removed by hand) and C again: the previous image is
    # started again in its slot and serves.
    sh(DOCKER, "rm", "-f", f"{host['name']}-green")
    fourth = deploy(host, tags["c"], DEPLOY_READY_TIMEOUT="15")
    assert fourth.returncode != 0
    assert f"starting {tags['b']} again in slot green" in fourth.stderr, fourth.stderr
    assert status(host) == {"slot": "green", "current": tags["b"], "previous": tags["a"]}
    assert app_containers(host) == {f"{host['name']}-green": tags["b"]}
    assert predict(port)[0] == 200

    # A manual rollback (`deploy.sh --rollback`) goes back to A; the broken image is pruned.
    back = deploy(host, "--rollback")
    assert back.returncode == 0, back.stderr
    assert status(host)["current"] == tags["a"]
    assert app_containers(host) == {f"{host['name']}-blue": tags["a"]}
    assert predict(port)[0] == 200
    assert sh(DOCKER, "images", "-q", tags["c"]).stdout.strip() == ""


def test_first_deploy_of_a_broken_image_fails_and_leaves_nothing_running(tags, host):
    out = deploy(host, tags["c"], DEPLOY_READY_TIMEOUT="5")
    assert out.returncode != 0
    assert "nothing was deployed before, nothing serves" in out.stderr, out.stderr
    assert app_containers(host) == {}
    assert status(host) == {"slot": "", "current": "", "previous": ""}
