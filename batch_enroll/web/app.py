"""The page and its JSON API: upload, check, enroll, watch, stop, resume, download.

Every rule comes from the library through ``engine``; this module only moves files and
JSON. The API key stays in the server's ``RunOptions``: no answer, page, URL, log line or
stored file carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batch_enroll import __version__
from batch_enroll.advice import EXPLANATIONS
from batch_enroll.model import RESULT_COLUMNS
from batch_enroll.web import engine
from batch_enroll.web.engine import LoadError, RunOptions
from batch_enroll.web.runs import (
    RESULTS_CSV,
    RESULTS_XLSX,
    ROWS_JSON,
    RunBusy,
    RunManager,
    as_public,
    frame_rows,
    new_id,
    now_iso,
    valid_id,
)

__all__ = ["AUTH_COOKIE", "CSRF_HEADER", "WebConfig", "create_app", "is_loopback"]

log = logging.getLogger("batch_enroll.web")

CSRF_HEADER = "X-CSRF-Token"
AUTH_COOKIE = "batch_enroll_auth"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

SECURITY_HEADERS: Mapping[str, str] = {
    # Scripts and styles only from this app's own files: no inline script can run.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none';"
        " frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    """Tell whether a listen address only accepts connections from this machine."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    """How the app is served: where it keeps data, how big an upload may be, who may use it."""

    data_dir: Path
    options: RunOptions
    max_upload_mb: float = 50.0
    auth_token: str | None = None
    #: Host names a browser may call this app by; empty: any (an auth token guards it).
    allowed_hosts: frozenset[str] = frozenset()
    #: Check uploads against LMS365 (the course and session rules) or offline only.
    online_check: bool = True


def _host_name(header: str) -> str:
    """Return the name in a Host header without its port: ``[::1]:8366`` -> ``[::1]``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.split(":", 1)[0]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _Guard:
    """Headers, host check, auth and CSRF for every request, as plain ASGI middleware."""

    def __init__(self, app: ASGIApp, *, config: WebConfig, csrf_token: str) -> None:
        self.app = app
        self.config = config
        self.csrf_token = csrf_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                if scope["path"].startswith("/api") or scope["path"] in ("/", "/login"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        request = Request(scope)
        refusal = self._refuse(request)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refuse(self, request: Request) -> Response | None:
        config = self.config
        host = _host_name(request.headers.get("host") or "")
        if config.allowed_hosts and host not in config.allowed_hosts:
            # A page on another site that rebinds its name to 127.0.0.1 lands here.
            return _error(400, f"this server does not answer to the host name {host!r}")
        path = request.url.path
        if config.auth_token is not None and not self._authenticated(request):
            if path == "/login" or path.startswith("/static/"):
                return None
            if path.startswith("/api"):
                return _error(401, "sign in first: this server needs its access token")
            return RedirectResponse("/login", status_code=303)
        if request.method not in _SAFE_METHODS and path != "/login":
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), self.csrf_token.encode()):
                return _error(
                    403,
                    f"missing or wrong {CSRF_HEADER} header: reload the page (scripts:"
                    " read the token from GET /api/session)",
                )
        return None

    def _authenticated(self, request: Request) -> bool:
        token = self.config.auth_token
        assert token is not None
        offered = request.cookies.get(AUTH_COOKIE, "")
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            offered = bearer[7:].strip()
        return bool(offered) and hmac.compare_digest(offered.encode(), token.encode())


def _added_columns(columns: list[str], sheet_columns: list[str]) -> list[str]:
    """Return the columns the tool adds after its first ones that are not the sheet's own."""
    return [c for c in columns if c not in RESULT_COLUMNS and c not in sheet_columns]


def _advice() -> dict[str, dict[str, str]]:
    """Return what each problem code means and what to do, as the page shows it."""
    return {code: {"meaning": m, "todo": t} for code, (m, t) in EXPLANATIONS.items()}


def _public_summary(summary: dict[str, Any], file: str) -> dict[str, Any]:
    """Drop the server's own paths from a summary before the page sees it."""
    public = dict(summary)
    public["input"] = file
    for key in ("output", "journal"):
        if public.get(key):
            public[key] = Path(str(public[key])).name
    return public


class _Api:
    """The route handlers, bound to one configuration and one run manager."""

    def __init__(self, config: WebConfig, csrf_token: str) -> None:
        self.config = config
        self.csrf_token = csrf_token
        self.uploads = config.data_dir / "uploads"
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.runs = RunManager(config.data_dir, config.options, max_input_mb=config.max_upload_mb)
        templates = Path(str(resources.files("batch_enroll.web") / "templates"))
        self.templates = Environment(
            loader=FileSystemLoader(templates),
            autoescape=select_autoescape(["html"], default=True),
        )

    # -- pages -----------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        html = self.templates.get_template("index.html").render(
            csrf_token=self.csrf_token,
            max_upload_mb=f"{self.config.max_upload_mb:g}",
            version=__version__,
            auth=self.config.auth_token is not None,
            online=self.config.online_check,
        )
        return HTMLResponse(html)

    async def login_page(self, request: Request) -> Response:
        html = self.templates.get_template("login.html").render(error="", version=__version__)
        return HTMLResponse(html)

    async def login(self, request: Request) -> Response:
        token = self.config.auth_token
        if token is None:
            return RedirectResponse("/", status_code=303)
        form = await request.form(max_files=0, max_fields=2)
        offered = str(form.get("token") or "")
        if not hmac.compare_digest(offered.encode(), token.encode()):
            html = self.templates.get_template("login.html").render(
                error="That access token is not right.", version=__version__
            )
            return HTMLResponse(html, status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            AUTH_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request) -> Response:
        response = JSONResponse({"signed_out": True})
        response.delete_cookie(AUTH_COOKIE)
        return response

    async def session(self, request: Request) -> Response:
        return JSONResponse({"csrf_token": self.csrf_token, "version": __version__})

    # -- uploads ---------------------------------------------------------------------------

    async def _read_limited(self, request: Request) -> bytes | Response:
        limit = int(self.config.max_upload_mb * 1024 * 1024)
        too_big = _error(
            413,
            f"the file is larger than the {self.config.max_upload_mb:g} MB this server"
            " accepts (--max-upload-mb); split the sheet or ask the admin to raise the limit",
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit + 64 * 1024:
            return too_big
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit + 64 * 1024:  # the multipart framing is not the file
                return too_big
        return bytes(body)

    async def upload(self, request: Request) -> Response:
        body = await self._read_limited(request)
        if isinstance(body, Response):
            return body
        replayed = False

        async def receive() -> Message:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, receive).form(max_files=1, max_fields=10)
        except Exception:  # the multipart parser's own errors: a malformed request
            return _error(400, "send the sheet as multipart/form-data in a field named 'file'")
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return _error(400, "choose a .csv or .xlsx file (multipart field 'file')")
        data = await upload.read()
        if len(data) > self.config.max_upload_mb * 1024 * 1024:
            return _error(
                413,
                f"the file is larger than the {self.config.max_upload_mb:g} MB this server"
                " accepts (--max-upload-mb)",
            )
        sheet_field = form.get("sheet")
        sheet_name = sheet_field.strip() if isinstance(sheet_field, str) and sheet_field else None
        name = Path(upload.filename.replace("\\", "/")).name[:200] or "sheet"
        suffix = Path(name).suffix.lower()
        upload_id = new_id()
        folder = self.uploads / upload_id
        folder.mkdir(parents=True)
        stored = folder / f"input{suffix if _SUFFIX.match(suffix) else ''}"
        stored.write_bytes(data)
        return await self._checked(upload_id, stored, name, sheet_name)

    async def _checked(
        self, upload_id: str, stored: Path, name: str, sheet_name: str | None
    ) -> Response:
        """Check a stored sheet, keep the answer beside it, and answer it."""
        short = engine.short_path(stored)
        try:
            answer = await anyio.to_thread.run_sync(self._check, upload_id, short, name, sheet_name)
        except LoadError as exc:
            return _error(400, as_public(str(exc), short, name))
        (stored.parent / "upload.json").write_text(json.dumps(answer), encoding="utf-8")
        return JSONResponse(answer)

    def _check(
        self, upload_id: str, stored: Path, name: str, sheet_name: str | None
    ) -> dict[str, Any]:
        options = self.config.options if self.config.online_check else None
        limit = self.config.max_upload_mb
        summary = asyncio.run(
            engine.validate_sheet_async(
                stored, report=None, options=options, sheet_name=sheet_name, max_input_mb=limit
            )
        )
        frame = engine.results_of(summary)
        plan = engine.plan_for(stored, frame, sheet_name=sheet_name, max_input_mb=limit)
        report_columns = [str(c) for c in frame.columns]
        sheet_columns = [c for c in plan.sheet_columns if c in report_columns]
        added = _added_columns(report_columns, sheet_columns)
        return {
            "id": upload_id,
            "file": name,
            "uploaded_at": now_iso(),
            "counts": {k: int(v) for k, v in summary.counts.items()},
            "rows": frame_rows(frame),
            "columns": report_columns,
            "sheet_columns": sheet_columns,
            "added_columns": added,
            "plan": {
                "rows": plan.rows,
                "courses": plan.courses,
                "unenrollments": plan.unenrollments,
            },
            "sheet": {
                "name": plan.sheet_name,
                "chosen": sheet_name,
                "header_row": plan.header_row,
                "skipped_rows": list(plan.skipped_rows),
                "sheet_names": list(plan.sheet_names),
                "hidden_sheets": list(plan.hidden_sheets),
                "other_sheets": list(plan.other_sheets),
            },
            "summary": _public_summary(summary.to_json(), name),
            "advice": _advice(),
        }

    def _upload_folder(self, request: Request) -> Path:
        upload_id = str(request.path_params["upload"])
        folder = self.uploads / upload_id
        if not valid_id(upload_id) or not (folder / "upload.json").is_file():
            raise HTTPException(404, "no such upload: choose the file again")
        return folder

    async def get_upload(self, request: Request) -> Response:
        folder = self._upload_folder(request)
        return Response((folder / "upload.json").read_bytes(), media_type="application/json")

    async def recheck(self, request: Request) -> Response:
        folder = self._upload_folder(request)
        try:
            wanted = await request.json()
        except ValueError:
            wanted = None
        if not isinstance(wanted, dict) or not isinstance(wanted.get("sheet"), str | None):
            return _error(400, 'send {"sheet": NAME or NUMBER} as JSON')
        sheet_name = (wanted.get("sheet") or "").strip() or None
        checked = json.loads((folder / "upload.json").read_text("utf-8"))
        stored = sorted(folder.glob("input*"))[0]
        return await self._checked(checked["id"], stored, checked["file"], sheet_name)

    async def start_run(self, request: Request) -> Response:
        folder = self._upload_folder(request)
        checked = json.loads((folder / "upload.json").read_text("utf-8"))
        if not checked["plan"]["rows"]:
            return _error(409, "nothing to send: no row of this sheet passed the check")
        inputs = sorted(folder.glob("input*"))
        try:
            record = self.runs.start(
                input_path=inputs[0],
                file=checked["file"],
                upload=checked["id"],
                # The sheet that was checked, named, so the run reads that one.
                sheet=checked["sheet"]["name"] or None,
            )
        except RunBusy as exc:
            return _error(409, str(exc))
        return JSONResponse({"run": record.id})

    # -- runs ------------------------------------------------------------------------------

    def _run_id(self, request: Request) -> str:
        run_id = request.path_params["run"]
        if not valid_id(run_id) or self.runs.get(run_id) is None:
            raise HTTPException(404, "no such run")
        return str(run_id)

    def _run_json(self, run_id: str) -> dict[str, Any]:
        record = self.runs.get(run_id)
        assert record is not None
        summary = self.runs.summary(run_id) if record.state != "running" else None
        folder = self.runs.folder(run_id)
        answer = record.to_json()
        answer["run"] = answer.pop("id")
        answer["summary"] = _public_summary(summary, record.file) if summary else None
        answer["downloads"] = {
            "csv": f"/api/runs/{run_id}/results.csv"
            if (folder / RESULTS_CSV).is_file() and record.state != "running"
            else None,
            "xlsx": f"/api/runs/{run_id}/results.xlsx"
            if (folder / RESULTS_XLSX).is_file() and record.state != "running"
            else None,
        }
        answer["resumable"] = record.state == "stopped"
        return answer

    async def list_runs(self, request: Request) -> Response:
        runs = []
        for record in self.runs.history():
            runs.append(self._run_json(record.id))
        return JSONResponse({"runs": runs})

    async def get_run(self, request: Request) -> Response:
        return JSONResponse(self._run_json(self._run_id(request)))

    async def stop_run(self, request: Request) -> Response:
        run_id = self._run_id(request)
        now = request.query_params.get("now", "") in ("1", "true", "yes")
        self.runs.stop(run_id, now=now)
        return JSONResponse(self._run_json(run_id))

    async def resume_run(self, request: Request) -> Response:
        run_id = self._run_id(request)
        try:
            self.runs.resume(run_id)
        except RunBusy as exc:
            return _error(409, str(exc))
        return JSONResponse({"run": run_id})

    async def run_rows(self, request: Request) -> Response:
        run_id = self._run_id(request)
        record = self.runs.get(run_id)
        path = self.runs.folder(run_id) / ROWS_JSON
        if record is None or record.state == "running" or not path.is_file():
            raise HTTPException(404, "no results to show yet")
        stored: dict[str, Any] = json.loads(path.read_text("utf-8"))
        added = _added_columns(stored["columns"], stored["sheet_columns"])
        return JSONResponse({"run": run_id, **stored, "added_columns": added, "advice": _advice()})

    async def download(self, request: Request) -> Response:
        run_id = self._run_id(request)
        kind = request.path_params["kind"]
        name = {"csv": RESULTS_CSV, "xlsx": RESULTS_XLSX}.get(kind)
        record = self.runs.get(run_id)
        path = self.runs.folder(run_id) / (name or "")
        if name is None or record is None or record.state == "running" or not path.is_file():
            raise HTTPException(404, "no results to download yet")
        stem = Path(record.file).stem or "sheet"
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:80]
        media = (
            "text/csv; charset=utf-8"
            if kind == "csv"
            else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        return FileResponse(path, media_type=media, filename=f"{safe}-results.{kind}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api"):
        return _error(exc.status_code, str(exc.detail))
    return Response(str(exc.detail), status_code=exc.status_code, media_type="text/plain")


async def _server_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the server's log only: it may name paths and cells.
    log.error("error answering %s %s", request.method, request.url.path, exc_info=exc)
    answer = _error(500, "something went wrong on the server; the details are in its log")
    # This answer leaves outside the guard middleware: give it the same headers.
    answer.headers.update(SECURITY_HEADERS)
    return answer


async def _favicon(request: Request) -> Response:
    return RedirectResponse("/static/favicon.svg", status_code=301)


def create_app(config: WebConfig) -> Starlette:
    """Build the web app; runs left going by a dead server show as stopped (resumable)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    csrf_token = secrets.token_urlsafe(32)
    api = _Api(config, csrf_token)
    static = Path(str(resources.files("batch_enroll.web") / "static"))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        # Stop runs so their journal and results are written whole; Resume finishes them.
        await anyio.to_thread.run_sync(api.runs.shutdown)

    routes: list[Route | Mount] = [
        Route("/", api.index),
        Route("/favicon.ico", _favicon),
        Route("/login", api.login_page, methods=["GET"]),
        Route("/login", api.login, methods=["POST"]),
        Route("/api/logout", api.logout, methods=["POST"]),
        Route("/api/session", api.session),
        Route("/api/uploads", api.upload, methods=["POST"]),
        Route("/api/uploads/{upload}", api.get_upload),
        Route("/api/uploads/{upload}/check", api.recheck, methods=["POST"]),
        Route("/api/uploads/{upload}/run", api.start_run, methods=["POST"]),
        Route("/api/runs", api.list_runs),
        Route("/api/runs/{run}", api.get_run),
        Route("/api/runs/{run}/stop", api.stop_run, methods=["POST"]),
        Route("/api/runs/{run}/resume", api.resume_run, methods=["POST"]),
        Route("/api/runs/{run}/rows", api.run_rows),
        Route("/api/runs/{run}/results.{kind}", api.download),
        Mount("/static", app=StaticFiles(directory=static), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_Guard, config=config, csrf_token=csrf_token)],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.runs = api.runs
    app.state.csrf_token = csrf_token
    return app
