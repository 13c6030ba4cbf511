"""The pages' routes: models (promote, roll back), run outputs, monitoring, report files.

Every page needs a logged-in Airflow user; a change records that user's name and is refused
across sites (see guard). Files come from an allow-list of reports only (see files).
"""
# No `from __future__ import annotations`: FastAPI must resolve the local Annotated types.

import mimetypes
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from credit_risk.config import Settings
from credit_risk.pipeline.run_paths import MONITORING, RunPaths
from credit_risk.report_model import ReportError

from . import catalog, reports
from .files import MODEL_REPORTS, SEGMENT, NotServed, RunsFolder, is_report
from .framing import AntiFraming
from .guard import check_change, trusted_origins, user_name
from .render import render

# Stored HTML (model cards, Data Docs, drift reports) runs without scripts of its own origin.
SANDBOX = {"Content-Security-Policy": "sandbox allow-scripts", "X-Content-Type-Options": "nosniff"}
MODEL_FILE_TYPES = {".html": "text/html", ".png": "image/png", ".json": "application/json",
                    ".md": "text/markdown"}


def _version(version: str) -> str:
    """A version id that is one plain path segment, else a 404."""
    if not SEGMENT.match(version):
        raise HTTPException(404, f"no model version {version!r}")
    return version


def _not_served(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": "Not Found"}, status_code=404)


def report_response(folder: RunsFolder, run: str, path: str) -> Response:
    """A run's report file (see is_report) as a response; NotServed for anything else."""
    if not is_report(run, path):
        raise NotServed(path)
    parts = (run, *path.split("/"))
    local = folder.local_or_none(*parts)
    if local is not None:
        return FileResponse(local, headers=SANDBOX)
    kind = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    return Response(folder.read(*parts), media_type=kind, headers=SANDBOX)


def create_ui(settings: Settings, user_dependency: Callable[..., Any],
              may_change: Callable[[Any], bool] = lambda user: False,
              origins: Collection[str] = ()) -> FastAPI:
    """The pages; `may_change(user)` allows promote and rollback, from `origins` too."""
    app = FastAPI(title="credit-risk", dependencies=[Depends(user_dependency)])
    app.add_middleware(AntiFraming)
    app.add_exception_handler(NotServed, _not_served)
    registry = catalog.open_registry(settings)
    _model_routes(app, registry, user_dependency, may_change, trusted_origins(origins))
    _run_routes(app, settings, RunsFolder(settings.data.runs_dir))
    return app


def _model_routes(app: FastAPI, registry: catalog.Registry, user_dependency: Callable[..., Any],
                  may_change: Callable[[Any], bool], trusted: frozenset[Any]) -> None:
    """The models page, a version's page and files, promote and rollback."""
    User = Annotated[Any, Depends(user_dependency)]
    Reason = Annotated[str, Form(min_length=1)]

    @app.get("/", response_class=HTMLResponse)
    def models() -> HTMLResponse:
        return render("models.html", title="Credit-risk models",
                      page=catalog.models_page(registry))

    @app.get("/models/{version}", response_class=HTMLResponse)
    def model(version: str) -> HTMLResponse:
        try:
            page = catalog.model_page(registry, _version(version))
        except catalog.RegistryError as exc:
            raise HTTPException(404, str(exc)) from exc
        title = f"{page.dataset if page.dataset is not None else '(none)'} / {page.model} {version}"
        return render("model.html", title=title, page=page)

    @app.get("/models/{version}/validation", response_class=HTMLResponse)
    def validation(version: str) -> HTMLResponse:
        """The version's validation report: its tables with traffic lights, and its figure."""
        try:
            report = catalog.validation_report(registry, _version(version))
        except catalog.RegistryError as exc:
            raise HTTPException(404, str(exc)) from exc
        except ReportError as exc:
            return render("validation.html", title=f"Validation report {version}",
                          version=version, report=None, problem=str(exc))
        return render("validation.html", title=f"Validation report {version}",
                      version=version, report=report, problem=None)

    @app.get("/models/{version}/files/{name}")
    def model_file(version: str, name: str) -> Response:
        """Reports only: never the model's pickle or its reference sample of training data."""
        if name not in MODEL_REPORTS:
            raise HTTPException(404)
        try:
            data = registry.read_file(_version(version), name)  # checksum-verified
        except (catalog.RegistryError, FileNotFoundError) as exc:
            raise HTTPException(404, str(exc)) from exc
        kind = MODEL_FILE_TYPES.get(Path(name).suffix, "application/octet-stream")
        return Response(data, media_type=kind, headers=SANDBOX)

    @app.post("/models/{version}/promote")
    def promote(version: str, request: Request, reason: Reason, user: User) -> RedirectResponse:
        check_change(request, user, may_change, trusted)
        try:
            registry.promote(_version(version), reason, by=user_name(user))
        except catalog.RegistryError as exc:
            raise HTTPException(404, str(exc)) from exc
        return RedirectResponse("../..", status_code=303)

    @app.post("/rollback")
    def rollback(request: Request, reason: Reason, user: User,
                 dataset: Annotated[str | None, Form(max_length=100)] = None) -> RedirectResponse:
        """Roll back the named dataset's champion (unnamed: the registry's only dataset)."""
        check_change(request, user, may_change, trusted)
        try:
            registry.rollback(reason, by=user_name(user), dataset=dataset)
        except catalog.RegistryError as exc:
            raise HTTPException(409, str(exc)) from exc
        return RedirectResponse(".", status_code=303)


def _run_routes(app: FastAPI, settings: Settings, folder: RunsFolder) -> None:
    """The training runs, one run's outputs, the monitoring page and report files."""

    @app.get("/runs", response_class=HTMLResponse)
    def runs() -> HTMLResponse:
        return render("runs.html", title="Training runs", runs=reports.training_runs(folder))

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def one_run(run_id: str) -> HTMLResponse:
        """One DAG run's outputs (linked from the DAG run view of the Airflow UI)."""
        name = RunPaths.for_run(settings, run_id).name
        if name == MONITORING:
            raise HTTPException(404)
        if not SEGMENT.match(name) or not folder.is_folder(name):
            raise HTTPException(404, f"no outputs for run {run_id}")
        return render("run.html", title=f"Run {run_id}", run=name,
                      paths=reports.run_outputs(folder, name))

    @app.get("/runs/{run}/{path:path}")
    def run_file(run: str, path: str) -> Response:
        """Reports only: never the run's raw data, splits or fitted candidates."""
        return report_response(folder, run, path)

    @app.get("/monitoring", response_class=HTMLResponse)
    def monitoring() -> HTMLResponse:
        """Per monitoring run, newest first: drift (PSI per field) and performance."""
        return render("monitoring.html", title="Monitoring: drift and performance",
                      runs=reports.monitoring_runs(folder))
