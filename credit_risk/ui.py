"""Pages for the Airflow UI (mounted by plugins/credit_risk_plugin.py): models, runs, reports.

Every page needs a logged-in Airflow user; promote and rollback record that user's name and
are refused across sites (see `_allowed`). Files are served from an allow-list of reports
only (see `is_report`, `MODEL_REPORTS`), each reached without a symlink; anything else,
however the path is spelled, is a 404.
"""
# No `from __future__ import annotations`: FastAPI must resolve the local Annotated types.

import html
import json
import mimetypes
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from credit_risk.config import Settings
from credit_risk.pipeline.run_paths import MONITORING, RunPaths
from credit_risk.registry import Registry, RegistryError, dataset_of

STYLE = ("body{font-family:system-ui,sans-serif;margin:1rem;color:#1d2330}table{border-collapse:"
         "collapse;margin:.5rem 0}td,th{border:1px solid #ccd;padding:.25rem .5rem;text-align:left}"
         "th{background:#eef}.approved{color:#2e7d32}.rejected{color:#b00020}form{display:inline}")


# What the pages serve: an allow-list of report files, nothing else. Never a run's raw tables,
# splits or fitted candidates, never a version's pickles or its reference sample of training
# data. Paths are relative to a training run folder (<runs>/<run>/), a monitoring run folder
# (<runs>/monitoring/<run>/) or a registry version.
_RUN = RunPaths(Path())  # a run folder's layout, relative to the folder
VALIDATION_RESULT = (_RUN.validation / "validation.json").as_posix()
RUN_REPORTS = {_RUN.comparison.as_posix(), _RUN.reliability.as_posix(), VALIDATION_RESULT}
# one JSON result per suite: <GX_RESULTS>/<suite>.json
GX_RESULTS = (_RUN.validation / "gx_results").as_posix()
DATA_DOCS = (_RUN.validation / "data_docs").as_posix()  # Great Expectations' static site
DATA_DOCS_SUFFIXES = {".html", ".css", ".js", ".png", ".jpg", ".gif", ".svg", ".ico", ".otf",
                      ".ttf", ".woff", ".woff2"}
# A monitoring run: the drift result, its Evidently report and PSI plot, the performance on
# matured loans and its plot (credit_risk.pipeline.monitoring).
DRIFT_REPORTS = {"drift.json", "drift_report.html", "psi.png", "performance.json",
                 "performance.png"}
MODEL_REPORTS = {"model_card.html", "model_card.md", "reliability.png", "comparison.json",
                 "validation.json", "data_docs.zip"}
# One path segment: the characters of Airflow run ids, version ids and report names; never
# empty, ".", "..", a hidden name, a separator or an escape.
SEGMENT = re.compile(r"(?!\.)[A-Za-z0-9_.~:+@=-]+\Z")
# Stored HTML (model cards, Data Docs, drift reports) runs without scripts of its own origin.
SANDBOX = {"Content-Security-Policy": "sandbox allow-scripts", "X-Content-Type-Options": "nosniff"}


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
                        f"<style>{STYLE}</style></head><body><h2>{title}</h2>{body}</body></html>")


def _e(v: Any) -> str:
    return html.escape(f"{v:.4f}" if isinstance(v, float) else str(v))


def _real(base: Path, *parts: str, folder: bool = False) -> Path:
    """base/parts when every part is a plain name and the path is a regular file (or folder)
    reached without a symlink anywhere below base; otherwise a 404."""
    if not parts or not all(SEGMENT.match(p) for p in parts):
        raise HTTPException(404)
    root = base.resolve()
    path = root.joinpath(*parts)
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise HTTPException(404) from None
    if real != path or not (real.is_dir() if folder else real.is_file()):
        raise HTTPException(404)
    return real


def is_report(run: str, path: str) -> bool:
    """Whether `path` of a run folder (or of monitoring/<run>/ when `run` is MONITORING)
    is a report the pages may serve."""
    parts = path.split("/")
    if not all(SEGMENT.match(p) for p in [run, *parts]):
        return False
    if run == MONITORING:
        return len(parts) == 2 and parts[1] in DRIFT_REPORTS
    folder, name = "/".join(parts[:-1]), parts[-1]
    return (path in RUN_REPORTS
            or (folder == GX_RESULTS and name.endswith(".json"))
            or ((folder == DATA_DOCS or folder.startswith(DATA_DOCS + "/"))
                and Path(name).suffix.lower() in DATA_DOCS_SUFFIXES))


class RunsFolder:
    """The run folders the pages read: a local folder (files reached without a symlink) or an
    object store URL (s3://...; no symlinks there). Every part is checked with SEGMENT."""

    def __init__(self, base: Path | str):
        self.url = str(base) if "://" in str(base) else None
        self.base = Path(base) if self.url is None else None
        if self.url is not None:
            import fsspec

            self.fs, self.root = fsspec.core.url_to_fs(self.url)

    def _key(self, parts: tuple[str, ...]) -> str:
        if not parts or not all(SEGMENT.match(p) for p in parts):
            raise HTTPException(404)
        return "/".join([self.root.rstrip("/"), *parts])

    def folders(self, *under: str) -> list[tuple[str, float]]:
        """(name, modified) of the run folders under `under`, newest first."""
        out = []
        if self.base is not None:
            base = self.base.joinpath(*under)
            for p in base.glob("*/"):
                if SEGMENT.match(p.name) and not p.is_symlink():
                    out.append((p.name, p.stat().st_mtime))
        else:
            try:
                entries = self.fs.ls("/".join([self.root.rstrip("/"), *under]), detail=True)
            except FileNotFoundError:
                entries = []
            for e in entries:
                name = e["name"].rstrip("/").rsplit("/", 1)[-1]
                if e.get("type") == "directory" and SEGMENT.match(name):
                    out.append((name, self._modified(name, *under)))
        return sorted(out, key=lambda x: x[1], reverse=True)

    def _modified(self, name: str, *under: str) -> float:
        """A folder's time on an object store (which has none): its newest file's."""
        key = "/".join([self.root.rstrip("/"), *under, name])
        times = [e.get("LastModified") or e.get("mtime") for e in
                 self.fs.find(key, maxdepth=2, detail=True).values()]
        stamps = [t.timestamp() if hasattr(t, "timestamp") else float(t or 0) for t in times]
        return max(stamps, default=0.0)

    def is_folder(self, *parts: str) -> bool:
        if self.base is not None:
            try:
                _real(self.base, *parts, folder=True)
                return True
            except HTTPException:
                return False
        return bool(self.fs.isdir(self._key(parts)))

    def is_file(self, *parts: str) -> bool:
        try:
            self.local_or_none(*parts)
            return True
        except HTTPException:
            return False

    def local_or_none(self, *parts: str) -> Path | None:
        """The local file (or None on an object store, checked there); a 404 if not a file."""
        if self.base is not None:
            return _real(self.base, *parts)
        if not self.fs.isfile(self._key(parts)):
            raise HTTPException(404)
        return None

    def read(self, *parts: str) -> bytes:
        local = self.local_or_none(*parts)
        return local.read_bytes() if local is not None else self.fs.cat_file(self._key(parts))


def report_response(folder: RunsFolder, run: str, path: str) -> Response:
    """A run's report file (see `is_report`) as a response, or a 404."""
    if not is_report(run, path):
        raise HTTPException(404)
    parts = (run, *path.split("/"))
    local = folder.local_or_none(*parts)
    if local is not None:
        return FileResponse(local, headers=SANDBOX)
    kind = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    return Response(folder.read(*parts), media_type=kind, headers=SANDBOX)


def _version(version: str) -> str:
    if not SEGMENT.match(version):
        raise HTTPException(404, f"no model version {version!r}")
    return version


def create_ui(settings: Settings, user_dependency: Callable[..., Any],
              may_change: Callable[[Any], bool] = lambda user: False,
              origins: Collection[str] = ()) -> FastAPI:
    """The pages; `may_change(user)` says whether a user may promote or roll back. A change
    must come from the pages' own origin or one of `origins` (e.g. Airflow's public base URL
    behind a TLS-terminating proxy)."""
    trusted = frozenset(filter(None, map(_origin, origins)))
    app = FastAPI(title="credit-risk", dependencies=[Depends(user_dependency)])
    User = Annotated[Any, Depends(user_dependency)]
    Reason = Annotated[str, Form(min_length=1)]
    registry = Registry.from_settings(settings)

    def aliases() -> tuple[dict[str, dict[str, Any]], str]:
        """({dataset: {alias: record}}, a warning): a refused alias record shows as a warning."""
        try:
            return registry.aliases(), ""
        except RegistryError as exc:
            return {}, f"<p class='rejected'>Alias record refused: {_e(exc)}</p>"

    def champion_of(dataset: str, groups: dict[str, dict[str, Any]]) -> str | None:
        return (groups.get(dataset, {}).get("champion") or {}).get("version")

    @app.get("/", response_class=HTMLResponse)
    def models() -> HTMLResponse:
        groups, refused = aliases()
        by_dataset: dict[str, list[str]] = {d: [] for d in groups}
        for v in reversed(registry.versions()):
            m = registry.manifest(v)
            try:
                dataset = dataset_of(v, m)
            except RegistryError:
                dataset = str(m.get("dataset"))  # listed, never promotable
            alias = "".join(a for a in ("champion", "previous")
                            if (groups.get(dataset, {}).get(a) or {}).get("version") == v)
            by_dataset.setdefault(dataset, []).append(
                f"<tr><td><a href='models/{_e(v)}'>{_e(v)}</a></td>"
                f"<td>{_e(m['model'])}</td><td>{_e(m['metrics']['roc_auc'])}</td>"
                f"<td>{_e(m['metrics']['ece'])}</td><td class='{_e(m.get('status'))}'>"
                f"{_e(m.get('status'))}</td><td>{alias}</td></tr>")
        sections = []
        for dataset in sorted(by_dataset):
            own = groups.get(dataset, {})
            champion, previous = (((own.get(a) or {}).get("version"))
                                  for a in ("champion", "previous"))
            sections.append(
                f"<h3 id='dataset-{_e(quote(dataset))}'>Dataset {_e(dataset or '(none)')}</h3>"
                f"<p>champion {_e(champion or '-')}, previous {_e(previous or '-')}</p>"
                "<table><tr><th>version</th><th>model</th><th>ROC-AUC</th><th>ECE</th>"
                "<th>status</th><th>alias</th></tr>" + "".join(by_dataset[dataset])
                + "</table>" + _rollback_form(previous, dataset))
        history = "".join(f"<li>{_e(h['set_at'])}: {_e(h.get('dataset') or '')} "
                          f"{_e(h['alias'])} &rarr; {_e(h['version'])} "
                          f"by {_e(h['by'])}: {_e(h['reason'])}</li>"
                          for h in reversed(registry.history()[-20:]))
        body = (refused + "<p><a href='runs'>Training runs</a> &middot; <a href='monitoring'>"
                "Drift reports</a></p>" + ("".join(sections) or "<p>No models yet.</p>")
                + f"<h3>Alias history</h3><ul>{history}</ul>")
        return _page("Credit-risk models", body)

    @app.get("/models/{version}", response_class=HTMLResponse)
    def model(version: str) -> HTMLResponse:
        try:
            m = registry.manifest(_version(version))
        except RegistryError as exc:
            raise HTTPException(404, str(exc)) from exc
        promote = "" if champion_of(str(m.get("dataset") or ""), aliases()[0]) == version else (
            f"<form method='post' action='{_e(version)}/promote'><input name='reason' required "
            f"placeholder='reason'> <button>Promote to champion of {_e(m.get('dataset'))}"
            "</button></form>")
        body = (f"<p><a href='../'>All models</a> &middot; {promote}</p>"
                f"<iframe src='{_e(version)}/files/model_card.html' style='width:100%;height:80vh;"
                "border:0'></iframe>")
        return _page(f"{_e(m['dataset'])} / {_e(m['model'])} {_e(version)}", body)

    @app.get("/models/{version}/files/{name}")
    def model_file(version: str, name: str) -> Response:
        """Reports only: never the model's pickle or its reference sample of training data."""
        if name not in MODEL_REPORTS:
            raise HTTPException(404)
        try:
            data = registry.read_file(_version(version), name)  # checksum-verified
        except (RegistryError, FileNotFoundError) as exc:
            raise HTTPException(404, str(exc)) from exc
        kinds = {".html": "text/html", ".png": "image/png", ".json": "application/json",
                 ".md": "text/markdown"}
        return Response(data, media_type=kinds.get(Path(name).suffix, "application/octet-stream"),
                        headers=SANDBOX)

    @app.post("/models/{version}/promote")
    def promote(version: str, request: Request, reason: Reason, user: User) -> RedirectResponse:
        _allowed(request, user, may_change, trusted)
        try:
            registry.promote(_version(version), reason, by=_name(user))
        except RegistryError as exc:
            raise HTTPException(404, str(exc)) from exc
        return RedirectResponse("../..", status_code=303)

    @app.post("/rollback")
    def rollback(request: Request, reason: Reason, user: User,
                 dataset: Annotated[str | None, Form(max_length=100)] = None) -> RedirectResponse:
        """Roll back one dataset's champion (the form names it; without a name, the
        registry's only dataset)."""
        _allowed(request, user, may_change, trusted)
        try:
            registry.rollback(reason, by=_name(user), dataset=dataset)
        except RegistryError as exc:
            raise HTTPException(409, str(exc)) from exc
        return RedirectResponse(".", status_code=303)

    folder = RunsFolder(settings.runs_dir)

    @app.get("/runs", response_class=HTMLResponse)
    def runs() -> HTMLResponse:
        found = [name for name, _ in folder.folders() if name != MONITORING][:50]
        rows = [f"<tr><td>{_e(run)}</td><td>{_run_links(folder, run, 'runs/')}</td></tr>"
                for run in found]
        return _page("Training runs", "<p><a href='.'>Models</a></p><table><tr><th>run</th>"
                     "<th>outputs</th></tr>" + "".join(rows) + "</table>")

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def one_run(run_id: str) -> HTMLResponse:
        """One DAG run's outputs (linked from the DAG run view of the Airflow UI)."""
        name = RunPaths.for_run(settings, run_id).name
        if name == MONITORING:
            raise HTTPException(404)
        if not SEGMENT.match(name) or not folder.is_folder(name):
            raise HTTPException(404, f"no outputs for run {run_id}")
        return _page(f"Run {_e(run_id)}", _run_links(folder, name, ""))

    @app.get("/runs/{run}/{path:path}")
    def run_file(run: str, path: str) -> Response:
        """Reports only: never the run's raw data, splits or fitted candidates."""
        return report_response(folder, run, path)

    @app.get("/monitoring", response_class=HTMLResponse)
    def monitoring() -> HTMLResponse:
        """Per monitoring run: drift (PSI per field, plotted; the Evidently report) and the
        performance on matured loans (figures and plots), newest first."""
        sections = []
        for run, _ in folder.folders(MONITORING)[:20]:
            drift, perf = _monitoring_json(run, "drift.json"), \
                _monitoring_json(run, "performance.json")
            if drift is None and perf is None:
                continue
            files = f"runs/{MONITORING}/{quote(run)}/"
            img = lambda name, alt, run=run, files=files: _img(folder, run, name, files, alt)  # noqa: E731
            sections.append(f"<h3 id='{_e(run)}'>{_e(run)}</h3>"
                            + _drift_section(drift, files, img)
                            + _performance_section(perf, files, img))
        return _page("Monitoring: drift and performance",
                     "<p><a href='.'>Models</a></p>" + ("".join(sections)
                                                        or "<p>No monitoring runs yet.</p>"))

    def _monitoring_json(run: str, name: str) -> dict[str, Any] | None:
        if not is_report(MONITORING, f"{run}/{name}"):
            return None
        try:
            data = json.loads(folder.read(MONITORING, run, name))
        except (HTTPException, ValueError, OSError):
            return None  # not a report this page may show
        return data if isinstance(data, dict) else None

    return app


def _img(folder: RunsFolder, run: str, name: str, files: str, alt: str) -> str:
    if not is_report(MONITORING, f"{run}/{name}") or not folder.is_file(MONITORING, run, name):
        return ""
    return f"<p><img src='{_e(files + name)}' alt='{_e(alt)}' style='max-width:100%'></p>"


def _drift_section(r: dict[str, Any] | None, files: str, img: Callable[[str, str], str]) -> str:
    if r is None:
        return "<p>No drift report.</p>"
    try:
        head = (f"<p>Drift: <b>{_e(r['status'])}</b>, drift {_e(r['drift'])}"
                + (f", drifted fields: {_e(', '.join(map(str, r['drifted_fields'])))}"
                   if r.get("drifted_fields") else "") + "</p>")
        rows = "".join(f"<tr><td>{_e(p['field'])}</td><td>{_e(float(p['psi']))}</td></tr>"
                       for p in r.get("psi") or [])
    except (KeyError, TypeError, ValueError):
        return "<p>Unreadable drift report.</p>"
    report = (f"<p><a href='{_e(files)}drift_report.html'>Evidently report</a> &middot; "
              f"<a href='{_e(files)}drift.json'>drift.json</a></p>" if r.get("report")
              else f"<p><a href='{_e(files)}drift.json'>drift.json</a></p>")
    table = (f"<details><summary>PSI per field</summary><table><tr><th>field</th><th>PSI</th>"
             f"</tr>{rows}</table></details>" if rows else "")
    return head + report + img("psi.png", "PSI per field") + table


def _performance_section(r: dict[str, Any] | None, files: str,
                         img: Callable[[str, str], str]) -> str:
    if r is None:
        return ""
    try:
        head = (f"<p>Performance on matured loans: <b>{_e(r['status'])}</b>, alert "
                f"<span class='{'rejected' if r['alert'] else 'approved'}'>{_e(r['alert'])}"
                f"</span> (decided {_e(r.get('decided_since', ''))[:10]} to "
                f"{_e(r.get('decided_until', ''))[:10]}) &middot; "
                f"<a href='{_e(files)}performance.json'>performance.json</a></p>")
        rows = []
        for v in r.get("versions") or []:
            t = v.get("training") or {}
            for x in [v, *v.get("vintages", [])]:
                rows.append(
                    f"<tr><td>{_e(v['model_version'])}</td><td>{_e(x.get('vintage', 'all'))}"
                    f"</td><td>{_e(x['n'])}</td><td>{_e(x['defaults'])}</td>"
                    f"<td>{_e(x['roc_auc'])}</td><td>{_e(t.get('roc_auc'))}</td>"
                    f"<td>{_e(x['ks'])}</td><td>{_e(x['brier'])}</td><td>{_e(x['mean_pd'])}</td>"
                    f"<td>{_e(x['default_rate'])}</td></tr>")
        alerts = "".join(f"<li class='rejected'>{_e(a['model_version'])} "
                         f"{_e(a.get('vintage') or 'all')}: {_e(a['message'])}</li>"
                         for a in r.get("alerts") or [])
    except (KeyError, TypeError, ValueError):
        return "<p>Unreadable performance report.</p>"
    table = ("<table><tr><th>version</th><th>vintage</th><th>n</th><th>defaults</th>"
             "<th>ROC-AUC</th><th>at training</th><th>KS</th><th>Brier</th><th>mean PD</th>"
             "<th>default rate</th></tr>" + "".join(rows) + "</table>") if rows else ""
    return (head + (f"<ul>{alerts}</ul>" if alerts else "") + table
            + img("performance.png", "Performance per vintage and rating band"))


def _run_links(folder: RunsFolder, run: str, prefix: str) -> str:
    """Links to a run's comparison, reliability plot, validation result and Data Docs."""
    names = [n for n in (_RUN.comparison.as_posix(), _RUN.reliability.as_posix(),
                         VALIDATION_RESULT, f"{DATA_DOCS}/index.html")
             if is_report(run, n) and folder.is_file(run, *n.split("/"))]
    return " &middot; ".join(f"<a href='{_e(prefix + quote(run))}/{_e(n)}'>{_e(n)}</a>"
                             for n in names) or "no outputs yet"


def _rollback_form(previous: str | None, dataset: str) -> str:
    if not previous:
        return ""
    if not dataset:  # an empty field reaches rollback() as no dataset: another one's rollback
        return ("<p>Roll back these models with <code>credit-risk models rollback --dataset ''"
                "</code>.</p>")
    return (f"<p><form method='post' action='rollback'><input type='hidden' name='dataset' "
            f"value='{_e(dataset)}'><input name='reason' required placeholder='reason'> "
            f"<button>Roll back {_e(dataset)} to {_e(previous)}</button></form></p>")


def _name(user: Any) -> str:
    get_name = getattr(user, "get_name", None)
    return str(get_name() if callable(get_name) else user)


DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str | None) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL, the default port filled in; None if it is no
    http(s) URL with a host (e.g. "null", "evil://...")."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host.lower(), port or DEFAULT_PORTS[scheme]


def _same_site(request: Request, trusted: frozenset[tuple[str, str, int]]) -> bool:
    """Whether a browser sent this from the pages' own origin (scheme, host and port) or a
    trusted one: by its Origin header, or without one by its Referer."""
    own = _origin(f"{request.url.scheme}://{request.headers.get('host', '')}")
    origin = request.headers.get("origin")
    sender = _origin(origin if origin is not None else request.headers.get("referer"))
    return sender is not None and (sender == own or sender in trusted)


def _allowed(request: Request, user: Any, may_change: Callable[[Any], bool],
             trusted: frozenset[tuple[str, str, int]] = frozenset()) -> None:
    """Only users allowed to change DAGs, and no cross-site posts. A request authenticated
    by the session cookie must show it came from the pages' origin (Origin, or a Referer
    when there is no Origin); a request with a Bearer token (which Airflow then uses, and
    which another site cannot make a browser send) needs none, but a foreign Origin is
    still refused."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    bearer = scheme.lower() == "bearer" and bool(token.strip())
    if "origin" in request.headers or not bearer:
        if not _same_site(request, trusted):
            raise HTTPException(403, "cross-origin request refused")
    if not may_change(user):
        raise HTTPException(403, f"{_name(user)} may not change the champion")
