"""The plugin's pages behind a real `airflow api-server`: what a logged-in user can read and change.

One api-server per module (a subprocess on a free loopback port, this repo's plugins/ folder, a
fresh AIRFLOW_HOME with a migrated SQLite DB, the simple auth manager with a user of each role).
Requests go out through `http.client`, which sends the path byte for byte: httpx and browsers
would normalise `..` away before the server ever saw it.
"""

import http.client
import json
import os
import posixpath
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from credit_risk.registry import Registry
from tests.conftest import republish
from tests.ui.conftest import drift_report

ROOT = Path(__file__).parents[2]
ROLES = ("viewer", "user", "op", "admin")
RUN = "fixture-run"
SCHEDULED = "scheduled__2026-11-30T00:00:00+00:00"
SECRET = "customer-table-secret-7f3a"  # planted in every file no page may serve


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, port: int, registry: Registry, runs: Path, versions: tuple[str, str]):
        self.port, self.registry, self.runs = port, registry, runs
        self.champion, self.other = versions
        self.tokens: dict[str, str] = {}

    def request(self, method: str, path: str, role: str | None = "viewer", body: str = "",
                headers: dict[str, str] | None = None, cookie: bool = False) -> tuple[int, bytes]:
        """One request with `path` sent exactly as given: (status, body)."""
        status, _, data = self.exchange(method, path, role, body, headers, cookie)
        return status, data

    def exchange(self, method: str, path: str, role: str | None = "viewer", body: str = "",
                 headers: dict[str, str] | None = None,
                 cookie: bool = False) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request with `path` sent exactly as given: (status, headers, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        hdrs = dict(headers or {})
        if role and cookie:
            hdrs["Cookie"] = f"_token={self.tokens[role]}"
        elif role:
            hdrs["Authorization"] = f"Bearer {self.tokens[role]}"
        if body:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body or None, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def get(self, path: str, role: str | None = "viewer", **kw) -> tuple[int, bytes]:
        return self.request("GET", path, role, **kw)

    def post(self, path: str, role: str, reason: str, **kw) -> int:
        return self.request("POST", path, role, body=f"reason={quote(reason)}", **kw)[0]


def _plant(runs: Path, outside: Path) -> None:
    """Files and symlinks an attacker would love to read through the report routes."""
    run = runs / RUN
    for private in ("raw/customers.parquet", "split/train.parquet", "candidates/xgboost.joblib"):
        assert (run / private).is_file()
    (run / "raw" / "customers.parquet").write_bytes(b"PAR1" + SECRET.encode())
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps({"secret": SECRET}))
    (outside / "comparison.json").write_text(json.dumps({"secret": SECRET}))
    # Symlinks inside a run folder, named like reports: to the raw data and out of the tree.
    (run / "validation" / "customers.json").symlink_to(run / "raw" / "customers.parquet")
    (run / "validation" / "gx_results" / "leak.json").symlink_to(outside / "secret.json")
    (run / "validation" / "data_docs" / "leak.html").symlink_to("../../raw/customers.parquet")
    (runs / "linked-run").symlink_to(outside, target_is_directory=True)
    # A monitoring run: its reports, a private file, and a symlinked report.
    daily = runs / "monitoring" / "daily-1"
    daily.mkdir(parents=True)
    (daily / "drift.json").write_text(json.dumps(drift_report(
        status="ok", drift=True, drifted_fields=["income"], report="drift_report.html")))
    (daily / "drift_report.html").write_text("<html><body>Evidently drift report</body></html>")
    (daily / "recent.parquet").write_bytes(b"PAR1" + SECRET.encode())
    scheduled = runs / "monitoring" / SCHEDULED  # named by the monitoring DAG's run id
    scheduled.mkdir()
    for name in ("drift.json", "drift_report.html"):
        shutil.copy(daily / name, scheduled / name)
    leaky = runs / "monitoring" / "daily-2"
    leaky.mkdir()
    (leaky / "drift.json").symlink_to(run / "raw" / "customers.parquet")
    (leaky / "drift_report.html").symlink_to(outside / "secret.json")
    (runs / "monitoring" / "drift.json").write_text(json.dumps({"secret": SECRET}))


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    settings, version = trained
    base = tmp_path_factory.mktemp("airflow-ui")
    shutil.copytree(settings.registry.url, base / "registry")
    shutil.copytree(settings.data.runs_dir, base / "runs", symlinks=True)
    _plant(base / "runs", base / "outside")
    registry = Registry(str(base / "registry"))
    other = republish(registry, version)
    # champion = the trained version, previous = the other one: a rollback would change it.
    registry.promote(other, "fixture", by="fixture")
    registry.promote(version, "fixture", by="fixture")

    home = base / "airflow-home"
    (home / "dags").mkdir(parents=True)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({r: f"{r}-pw" for r in ROLES}))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "CREDIT_RISK_"))}
    env.update(
        AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__AUTH_MANAGER=(
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{r}:{r}" for r in ROLES),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(64),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        CREDIT_RISK_RUNS_DIR=str(base / "runs"), CREDIT_RISK_REGISTRY_URL=str(base / "registry"),
        GX_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", SCARF_ANALYTICS="false",
        PYTHONPATH=str(ROOT),
    )
    airflow = [sys.executable, "-m", "airflow"]
    migrate = subprocess.run([*airflow, "db", "migrate"], env=env, cwd=base,
                             capture_output=True, text=True, timeout=180)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    port = _free_port()
    log = (base / "api-server.log").open("wb")
    proc = subprocess.Popen([*airflow, "api-server", "-H", "127.0.0.1", "-p", str(port),
                             "-w", "1"], env=env, cwd=base, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    srv = Server(port, registry, base / "runs", (version, other))
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (base / "api-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "api-server did not start"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                for role in ROLES:
                    login = {"username": role, "password": f"{role}-pw"}
                    conn.request("POST", "/auth/token", body=json.dumps(login),
                                 headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    assert resp.status == 201, resp.read()
                    srv.tokens[role] = json.loads(resp.read())["access_token"]
                conn.close()
                break
            except (ConnectionError, OSError):
                time.sleep(0.25)
        yield srv
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


# -- reading: reports only ----------------------------------------------------------------

RUN_REPORTS = ("comparison.json", "reliability.png", "validation/validation.json",
               "validation/data_docs/index.html",
               "validation/data_docs/static/styles/data_docs_default_styles.css",
               "validation/gx_results/lauki_synthetic.customers.json")
MODEL_REPORTS = ("model_card.html", "model_card.md", "reliability.png", "comparison.json",
                 "validation.json", "data_docs.zip")


def test_pages_and_reports_are_served(server):
    v = server.champion
    for page in ("/credit-risk/", "/credit-risk/runs", f"/credit-risk/runs/{RUN}",
                 "/credit-risk/monitoring", f"/credit-risk/models/{v}"):
        status, body = server.get(page)
        assert status == 200, page
        assert b"<html" in body
    for name in RUN_REPORTS:
        assert server.get(f"/credit-risk/runs/{RUN}/{name}")[0] == 200, name
    for name in MODEL_REPORTS:
        assert server.get(f"/credit-risk/models/{v}/files/{name}")[0] == 200, name
    status, body = server.get("/credit-risk/runs/monitoring/daily-1/drift.json")
    assert status == 200 and json.loads(body)["drift"] is True
    assert server.get("/credit-risk/runs/monitoring/daily-1/drift_report.html")[0] == 200
    # The session cookie the Airflow UI sets works as well as the Bearer header; nothing
    # works without either.
    assert server.get(f"/credit-risk/runs/{RUN}/comparison.json", cookie=True)[0] == 200
    assert server.get(f"/credit-risk/runs/{RUN}/comparison.json", role=None)[0] == 401
    assert server.get(f"/credit-risk/models/{v}/files/model_card.html", role=None)[0] == 401


def test_pages_behind_airflow_refuse_framing_by_other_sites(server):
    """Mounted in Airflow, each HTML page and stored HTML report still says that only its own
    origin (Airflow's UI, which shows plugin views in a same-origin iframe) may frame it."""
    v = server.champion
    pages = ["/credit-risk/", "/credit-risk/runs", f"/credit-risk/runs/{RUN}",
             "/credit-risk/monitoring", f"/credit-risk/models/{v}",
             f"/credit-risk/models/{v}/files/model_card.html",
             f"/credit-risk/runs/{RUN}/validation/data_docs/index.html",
             "/credit-risk/runs/monitoring/daily-1/drift_report.html"]
    for page in pages:
        status, headers, _ = server.exchange("GET", page)
        assert status == 200 and headers["content-type"].startswith("text/html"), page
        assert headers.get_all("x-frame-options") == ["SAMEORIGIN"], page
        [policy] = headers.get_all("content-security-policy")
        directives = [d.strip() for d in policy.split(";")]
        assert [d for d in directives if d.startswith("frame-ancestors")] == \
            ["frame-ancestors 'self'"], page


def _chromium() -> str:
    """Debian's Chromium, as for the form's browser tests (make browser installs it)."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):  # a missing install step is a failure, not a skip
        pytest.fail(f"no Chromium at {path}: run `make browser` (apt-get install chromium)")
    return path


def _shows(frame, text: str) -> bool:
    try:
        return text in frame.content()
    except Exception:  # a frame the browser refused has no document to read
        return False


def test_a_browser_frames_the_pages_in_airflow_only(server):
    """In Chromium: Airflow's UI shows the models page in its iframe and a model's page shows
    its card, but a page of another site that frames the models page gets nothing, even with
    the user's credentials on every request."""
    from playwright import sync_api

    base, token = f"http://127.0.0.1:{server.port}", server.tokens["viewer"]
    evil = f"<iframe src='{base}/credit-risk/' style='width:100%;height:20em'></iframe>"
    with sync_api.sync_playwright() as p:
        # Local Network Access checks off: only the pages' own headers may refuse the frame.
        browser = p.chromium.launch(executable_path=_chromium(), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-features=LocalNetworkAccessChecks"])
        context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {token}"})
        context.add_cookies([{"name": "_token", "value": token, "url": base}])
        page = context.new_page()
        page.goto(f"{base}/plugin/credit-risk-models")
        framed = page.frame_locator("iframe[title='Credit-risk models']")
        sync_api.expect(framed.locator("h2")).to_have_text("Credit-risk models", timeout=60_000)
        page.goto(f"{base}/credit-risk/models/{server.champion}")
        card = page.frame_locator("iframe").locator("body")
        sync_api.expect(card).to_contain_text("Model card", timeout=30_000)
        # Another origin (localhost, not 127.0.0.1) frames the models page: refused.
        other = f"http://localhost:{server.port}/evil"
        page.route(other, lambda route: route.fulfill(
            status=200, content_type="text/html", body=evil))
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(other, wait_until="load")
        assert len(page.frames) == 2
        assert not any(_shows(frame, "Credit-risk models") for frame in page.frames)
        assert any("frame-ancestors 'self'" in line for line in console), console
        browser.close()


def test_every_link_on_the_pages_is_served(server):
    """The allow-list covers what the pages link to, Data Docs' own pages and styles included."""
    status, page = server.get(f"/credit-risk/runs/{RUN}")
    links = re.findall(r"href='([^']+)'", page.decode())
    assert any("data_docs/index.html" in link for link in links)
    for link in links:
        assert server.get(f"/credit-risk/runs/{link}")[0] == 200, link
    # Drift reports, also of a run named by Airflow (":" and "+" in the name); the listing
    # leaves out what it may not serve (daily-2's symlinks).
    page = server.get("/credit-risk/monitoring")[1].decode()
    links = re.findall(r"href='(runs/monitoring/[^']+)'", page)
    assert {link.split("/")[2] for link in links} == {quote(SCHEDULED), "daily-1"}, links
    assert "daily-2" not in page
    for link in links:
        assert server.get(f"/credit-risk/{link}")[0] == 200, link
    # Data Docs pages link each other and their static files relatively (as a browser
    # resolves them); every link to a file that exists is served.
    docs = server.runs / RUN / "validation" / "data_docs"
    pages = [docs / "index.html", *sorted(docs.glob("expectations/*/*.html"))[:1],
             *sorted(docs.glob("validations/**/*.html"))[:1]]
    checked = set()
    for page_file in pages:
        rel_page = page_file.relative_to(server.runs).as_posix()
        status, body = server.get(f"/credit-risk/runs/{rel_page}")
        assert status == 200, rel_page
        for ref in re.findall(r'(?:href|src)="([^"#?]+)"', body.decode()):
            if "://" in ref or ref.startswith(("/", "mailto:")):
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(rel_page), ref))
            if (server.runs / target).is_file():
                checked.add(target)
    assert any(t.endswith(".ico") for t in checked) and len(checked) > 5, checked
    for target in sorted(checked):
        assert server.get(f"/credit-risk/runs/{target}")[0] == 200, target


TRAVERSALS = [
    # the reproduction and its encodings
    f"/credit-risk/runs/{RUN}/validation/../raw/customers.parquet",
    f"/credit-risk/runs/{RUN}/validation/%2e%2e/raw/customers.parquet",
    f"/credit-risk/runs/{RUN}/validation/%2E%2E/raw/customers.parquet",
    f"/credit-risk/runs/{RUN}/validation/.%2e/raw/customers.parquet",
    f"/credit-risk/runs/{RUN}/validation/..%2Fraw%2Fcustomers.parquet",
    f"/credit-risk/runs/{RUN}/validation%2F..%2Fraw%2Fcustomers.parquet",
    f"/credit-risk/runs/{RUN}/validation%2f%2e%2e%2fraw%2fcustomers.parquet",
    f"/credit-risk/runs/{RUN}/validation/data_docs/../../raw/customers.parquet",
    f"/credit-risk/runs/{RUN}/validation/./../raw/customers.parquet",
    f"/credit-risk/runs/{RUN}/validation/../split/train.parquet",
    f"/credit-risk/runs/{RUN}/validation/../candidates/xgboost.joblib",
    f"/credit-risk/runs/{RUN}/validation/..%5craw%5ccustomers.parquet",
    # double encoding
    f"/credit-risk/runs/{RUN}/validation/%252e%252e/raw/customers.parquet",
    f"/credit-risk/runs/{RUN}/validation/%252e%252e%252fraw%252fcustomers.parquet",
    # private files named directly
    f"/credit-risk/runs/{RUN}/raw/customers.parquet",
    f"/credit-risk/runs/{RUN}/split/train.parquet",
    f"/credit-risk/runs/{RUN}/candidates/xgboost.joblib",
    f"/credit-risk/runs/{RUN}/raw/snapshot.json",
    # absolute paths (one into the run's raw data: inside the runs folder)
    f"/credit-risk/runs/{RUN}//{{runs}}/{RUN}/raw/customers.parquet",
    f"/credit-risk/runs/{RUN}/%2F{{runs_q}}%2F{RUN}%2Fraw%2Fcustomers.parquet",
    f"/credit-risk/runs/{RUN}/validation/%2F{{runs_q}}%2F{RUN}%2Fraw%2Fcustomers.parquet",
    f"/credit-risk/runs/{RUN}/%2Fetc%2Fpasswd",
    # symlinks planted in a run folder, named like reports
    f"/credit-risk/runs/{RUN}/validation/customers.json",
    f"/credit-risk/runs/{RUN}/validation/gx_results/leak.json",
    f"/credit-risk/runs/{RUN}/validation/data_docs/leak.html",
    "/credit-risk/runs/linked-run/comparison.json",
    "/credit-risk/runs/linked-run",
    # out of the runs folder by the run segment
    f"/credit-risk/runs/%2e%2e/runs/{RUN}/raw/customers.parquet",
    "/credit-risk/runs/..",
    "/credit-risk/runs/%2e%2e",
    # the monitoring folder
    "/credit-risk/runs/monitoring/daily-1/recent.parquet",
    "/credit-risk/runs/monitoring/%2e%2e/drift.json",
    "/credit-risk/runs/monitoring/daily-1/../drift.json",
    f"/credit-risk/runs/monitoring/daily-1/..%2F..%2F{RUN}%2Fraw%2Fcustomers.parquet",
    f"/credit-risk/runs/monitoring/%2e%2e/{RUN}/raw/customers.parquet",
    "/credit-risk/runs/monitoring/daily-2/drift.json",
    "/credit-risk/runs/monitoring/daily-2/drift_report.html",
    # model version files: pickles and the reference sample of training data
    "/credit-risk/models/{champion}/files/model.joblib",
    "/credit-risk/models/{champion}/files/reference.parquet",
    "/credit-risk/models/{champion}/files/manifest.json",
    "/credit-risk/models/{champion}/files/..%2Fmodel.joblib",
    "/credit-risk/models/{champion}/files/%2e%2e%2f{other}%2fmodel.joblib",
    "/credit-risk/models/%2e%2e/files/model_card.html",
    "/credit-risk/models/%2e%2e",
]


@pytest.mark.parametrize("role", ["viewer", "admin"])
def test_traversal_and_private_files_are_404(server, role):
    """Not even an Admin reads raw data, splits, pickles or anything outside through the UI."""
    fill = {"runs": str(server.runs.resolve()).lstrip("/"),
            "runs_q": quote(str(server.runs.resolve()).lstrip("/"), safe=""),
            "champion": server.champion, "other": server.other}
    served = {}
    for attack in TRAVERSALS:
        path = attack.format(**fill)
        status, body = server.get(path, role)
        if status != 404 or SECRET.encode() in body:
            served[path] = status
    assert served == {}


# -- changing: promote and roll back -------------------------------------------------------

@pytest.mark.parametrize("role", ["viewer", "user"])
def test_viewer_and_user_may_not_promote_or_roll_back(server, role):
    registry, champion = server.registry, server.champion
    assert registry.alias_version("champion") == champion
    assert registry.alias_version("previous") == server.other  # a rollback would change it
    assert server.post(f"/credit-risk/models/{server.other}/promote", role, "mine") == 403
    assert server.post("/credit-risk/rollback", role, "mine") == 403
    assert registry.alias_version("champion") == champion
    assert all(h["by"] != role for h in registry.history())


@pytest.mark.parametrize("role", ["op", "admin"])
def test_op_and_admin_promote_and_roll_back(server, role):
    registry, champion, other = server.registry, server.champion, server.other
    assert server.post(f"/credit-risk/models/{other}/promote", role, f"{role} likes it") == 303
    assert registry.alias_version("champion") == other
    assert registry.history()[-1]["by"] == role
    # The browser's way: the session cookie, a same-origin form post. A cross-site post riding
    # on the cookie is refused.
    own = {"Origin": f"http://127.0.0.1:{server.port}"}
    evil = {"Origin": "http://evil.example"}
    assert server.post("/credit-risk/rollback", role, "x", cookie=True, headers=evil) == 403
    assert registry.alias_version("champion") == other
    assert server.post("/credit-risk/rollback", role, "back", cookie=True, headers=own) == 303
    assert registry.alias_version("champion") == champion
    assert registry.alias_version("previous") == other
    assert registry.history()[-1]["by"] == role


def test_cookie_posts_need_the_same_origin_bearer_posts_none(server):
    """The attack: `Origin: evil://127.0.0.1:<port>` passed (only host and port were compared)
    and a post without Origin passed. Now scheme, host and port count, and a cookie post needs
    Origin or a same-origin Referer; a Bearer post (a script) needs neither."""
    registry, champion, other, port = server.registry, server.champion, server.other, server.port
    refused = [{"Origin": f"evil://127.0.0.1:{port}"}, {"Origin": f"https://127.0.0.1:{port}"},
               {"Origin": f"http://127.0.0.1:{port + 1}"}, {"Origin": "http://127.0.0.1"},
               {"Origin": f"http://localhost:{port}"}, {"Origin": "null"}, {},
               {"Referer": "http://evil.example/credit-risk/"},
               {"Referer": f"evil://127.0.0.1:{port}/credit-risk/"}]
    history = len(registry.history())
    for headers in refused:
        assert server.post("/credit-risk/rollback", "admin", "x", cookie=True,
                           headers=headers) == 403, headers
        assert server.post(f"/credit-risk/models/{other}/promote", "admin", "x", cookie=True,
                           headers=headers) == 403, headers
    assert server.post("/credit-risk/rollback", "admin", "x",
                       headers={"Origin": "http://evil.example"}) == 403  # Bearer, foreign
    assert registry.alias_version("champion") == champion
    assert len(registry.history()) == history
    # A browser that sends no Origin but a same-origin Referer; a script with a token.
    same = {"Referer": f"http://127.0.0.1:{port}/credit-risk/"}
    assert server.post("/credit-risk/rollback", "admin", "referer", cookie=True,
                       headers=same) == 303
    assert registry.alias_version("champion") == other
    assert server.post("/credit-risk/rollback", "admin", "script") == 303
    assert registry.alias_version("champion") == champion
    assert registry.alias_version("previous") == other
