"""The ``batch-enroll`` command line: parse, call the library, print."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict, TypeVar

import click

from batch_enroll.errors import BatchEnrollError, ConfigError
from batch_enroll.model import (
    DEFAULT_MAX_INPUT_MB,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_SOFTWARE,
)
from batch_enroll.options import (
    DEFAULT_CONCURRENCY,
    REGIONS,
    ConnectionOptions,
    RunOptions,
    resolve_base_url,
)

if TYPE_CHECKING:
    import ssl

    from tqdm import tqdm

    from batch_enroll.progress import Progress
    from batch_enroll.reporter import Summary

# Heavy modules (pandas, httpx, anyio, aiohttp) load inside the commands that use
# them, so --help and --version answer at once.

API_KEY_ENV = "LMS365_API_KEY"
API_KEY_FILE_ENV = "LMS365_API_KEY_FILE"
BASE_URL_ENV = "LMS365_BASE_URL"
#: Where a command's outputs go, for the last-resort handler's traceback file.
_CRASH_FOLDER = "batch_enroll.crash_folder"


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    click.echo(f"batch-enroll: error: {message}", err=True)
    sys.exit(code)


def _parse_rate(_ctx: click.Context, _param: click.Parameter, value: str) -> float | None:
    if value.strip().lower() == "auto":
        return None
    try:
        rate = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither 'auto' nor a number") from None
    if not rate > 0:
        raise click.BadParameter("the rate must be above 0 requests per second")
    return rate


def _default_out(input_path: Path, suffix: str) -> Path:
    return input_path.with_name(f"{input_path.stem}-{suffix}.csv")


def _print_summary(summary: Summary) -> None:
    from batch_enroll.reporter import render_summary

    click.echo(render_summary(summary))


class _ProgressBar:
    """Draw a run's progress on stderr, fed by the library's on_progress."""

    def __init__(self) -> None:
        self._bar: tqdm[Any] | None = None

    def __call__(self, progress: Progress) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=progress.total,
                file=sys.stderr,
                unit="row",
                dynamic_ncols=True,
                leave=False,
            )
        self._bar.total = progress.total
        self._bar.update(progress.done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


_connection_options = [
    click.option(
        "--base-url",
        envvar=BASE_URL_ENV,
        show_envvar=True,
        help="API root, e.g. https://api.365.systems (default). http:// only to localhost.",
    ),
    click.option(
        "--api-key",
        envvar=API_KEY_ENV,
        show_envvar=True,
        help="LMS365 API key (Full Control to enroll). Prefer --api-key-file.",
    ),
    click.option(
        "--api-key-file",
        envvar=API_KEY_FILE_ENV,
        show_envvar=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Read the API key from this file (one line; e.g. a systemd credential).",
    ),
    click.option(
        "--proxy",
        help="Proxy for every request, http://[user:password@]host[:port]; '' for none"
        " (default: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY, as curl reads them).",
    ),
    click.option(
        "--ca-bundle",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Trust these CA certificates (PEM), e.g. a corporate TLS proxy's.",
    ),
]


def _api_key(api_key: str | None, api_key_file: Path | None) -> str | None:
    """Pick the key (what is typed outranks the environment); None when none is given."""
    from batch_enroll.keyfile import choose_api_key

    ctx = click.get_current_context()
    from_env = click.core.ParameterSource.ENVIRONMENT
    try:
        chosen = choose_api_key(
            key=api_key,
            key_from_env=ctx.get_parameter_source("api_key") is from_env,
            key_file=api_key_file,
            key_file_from_env=ctx.get_parameter_source("api_key_file") is from_env,
        )
    except ConfigError as exc:
        _fail(str(exc))
    if chosen is None:
        return None
    for warning in chosen.warnings:
        click.echo(f"batch-enroll: {warning}", err=True)
    return chosen.key


def _check_proxy(proxy: str | None) -> None:
    """Refuse an unusable --proxy or proxy variable before anything is sent."""
    from batch_enroll.proxy import ProxySettings

    try:
        ProxySettings(proxy=proxy)
    except ConfigError as exc:
        _fail(str(exc))


class _Connection(TypedDict):
    """The connection options of run, validate and doctor, checked."""

    base_url: str
    api_key: str
    proxy: str | None
    verify: ssl.SSLContext | bool


def _connection(
    *,
    base_url: str | None,
    region: str | None,
    api_key: str | None,
    api_key_file: Path | None,
    proxy: str | None,
    ca_bundle: Path | None,
    no_key: str = "",
) -> _Connection:
    """Check the shared connection options as every command that connects does.

    Fail in one line (``no_key`` when no key is given) before anything is sent.
    """
    source = click.get_current_context().get_parameter_source("base_url")
    if region and source is click.core.ParameterSource.ENVIRONMENT:
        base_url = None  # a --region typed now outranks LMS365_BASE_URL set long ago
    key = _api_key(api_key, api_key_file)
    if not key:
        _fail(
            no_key or f"no API key: set {API_KEY_FILE_ENV} or {API_KEY_ENV}, or pass --api-key-file"
        )
    try:
        url = resolve_base_url(base_url, region)
    except ConfigError as exc:
        _fail(str(exc))
    _check_proxy(proxy)
    return {"base_url": url, "api_key": key, "proxy": proxy, "verify": _trust(ca_bundle)}


def _crash_folder(folder: Path | None) -> None:
    """Tell the last-resort handler where this command's outputs go."""
    click.get_current_context().meta[_CRASH_FOLDER] = folder


class _Guarded(click.Group):
    """A command group that turns any unexpected exception into one line and exit 70.

    The traceback goes to a file the line names, beside the command's outputs (or in
    the temp folder), with every known secret scrubbed from both.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            from batch_enroll.crash import crash_line, write_crash_report

            report = write_crash_report(exc, folder=ctx.meta.get(_CRASH_FOLDER))
            click.echo(crash_line(exc, report), err=True)
            sys.exit(EXIT_SOFTWARE)


_region = click.option(
    "--region", type=click.Choice(sorted(REGIONS)), help="Use a regional API host."
)
_timeout = click.option(
    "--timeout",
    type=click.FloatRange(0.1, 600),
    default=30.0,
    show_default=True,
    help="Seconds to wait for each answer.",
)
_concurrency = click.option(
    "--concurrency",
    "--max-concurrency",
    "concurrency",
    type=click.IntRange(1, 1000),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Most requests in flight at once; with --rate auto, in-flight requests follow the rate"
    " up to this.",
)
_rate = click.option(
    "--rate",
    default="auto",
    show_default=True,
    callback=_parse_rate,
    help="Requests per second for each run, or 'auto' to find the tenant's ceiling.",
)
_max_unenroll = click.option(
    "--max-unenroll",
    default="10%",
    show_default=True,
    help="Refuse a run that would unenroll more rows than this count or share.",
)
_require_session = click.option(
    "--require-session",
    is_flag=True,
    help="Treat an instructor-led row without a session as invalid instead of a warning.",
)
_summary_json = click.option(
    "--summary-json",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the summary as JSON (for schedulers).",
)

# How the input is read, shared by run and validate.
_input_options = [
    click.option(
        "--sheet",
        "sheet_name",
        metavar="NAME|N",
        help="Read this sheet of a workbook, by name or 1-based number (hidden ones too)."
        " Default: the first visible sheet with a header row.",
    ),
    click.option(
        "--max-input-mb",
        metavar="MB",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_MAX_INPUT_MB,
        show_default=True,
        help="Refuse an input file larger than this many MB before reading it.",
    ),
]

_verbose = click.option(
    "-v", "--verbose", is_flag=True, help="Log every request to stderr (no secrets)."
)

F = TypeVar("F", bound=Callable[..., Any])


def _with(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    """Apply a shared list of click options, in order."""

    def decorate(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


@click.group(cls=_Guarded, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batch_enroll", prog_name="batch-enroll")
@_verbose
def main(verbose: bool) -> None:
    """Enroll people into LMS365 courses in bulk, from a CSV or Excel sheet."""
    if verbose:
        _log_to_stderr()


def _log_to_stderr() -> None:
    import logging

    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(message)s")
    # Their debug lines would repeat ours with less meaning (and may echo headers).
    for noisy in ("httpx", "httpcore", "asyncio", "aiohttp", "hpack", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results CSV (default: INPUT-results.csv beside the input).",
)
@_with(_input_options)
@_with(_connection_options)
@_region
@_concurrency
@_rate
@click.option(
    "--max-retries",
    type=click.IntRange(0, 100),
    default=5,
    show_default=True,
    help="Retries per row after a 5xx, a timeout or a broken connection.",
)
@_timeout
@_require_session
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@_summary_json
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Journal of finished rows (default: RESULTS.csv.journal beside the results).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Finish a stopped run from its journal: rows with an outcome are not sent again.",
)
@click.option(
    "--skip-enrolled",
    is_flag=True,
    help="Read each course's enrollments once and do not send rows already enrolled.",
)
@_max_unenroll
@click.option(
    "--resolve-users",
    is_flag=True,
    help="Look up each e-mail in LMS365 first; unknown users become invalid, known ones are"
    " sent with their LMS365 login name.",
)
@click.option(
    "--ignore-max-attendees",
    is_flag=True,
    help="Enroll into full sessions (rows may still say false in an ignore_max_attendees column).",
)
@click.option(
    "--ignore-enrollment-flow",
    is_flag=True,
    help="Skip the course's approval flow (rows may say otherwise in their own column).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one JSON line per request outcome (no secrets).",
)
@_verbose
def run(
    input_path: Path,
    out: Path | None,
    sheet_name: str | None,
    max_input_mb: float,
    base_url: str | None,
    api_key: str | None,
    api_key_file: Path | None,
    proxy: str | None,
    ca_bundle: Path | None,
    region: str | None,
    concurrency: int,
    rate: float | None,
    max_retries: int,
    timeout: float,
    require_session: bool,
    no_progress: bool,
    summary_json: Path | None,
    journal: Path | None,
    resume: bool,
    skip_enrolled: bool,
    max_unenroll: str,
    resolve_users: bool,
    ignore_max_attendees: bool,
    ignore_enrollment_flow: bool,
    log_file: Path | None,
    verbose: bool,
) -> None:
    """Validate INPUT, enroll its valid rows, and write a results CSV."""
    if verbose:
        _log_to_stderr()
    out = out or _default_out(input_path, "results")
    _crash_folder(out.parent)
    connection = _connection(
        base_url=base_url,
        region=region,
        api_key=api_key,
        api_key_file=api_key_file,
        proxy=proxy,
        ca_bundle=ca_bundle,
    )
    from batch_enroll.files import check_writable
    from batch_enroll.requestlog import RequestLog
    from batch_enroll.runner import run_sheet

    try:
        check_writable(appended=[("request log", log_file)])
    except ConfigError as exc:
        _fail(str(exc))
    request_log = RequestLog(log_file) if log_file is not None else None
    options = RunOptions(
        **connection,
        concurrency=concurrency,
        rate=rate,
        max_retries=max_retries,
        timeout=timeout,
        require_session=require_session,
        skip_enrolled=skip_enrolled,
        max_unenroll=max_unenroll,
        resolve_users=resolve_users,
        ignore_max_attendees=ignore_max_attendees,
        ignore_enrollment_flow=ignore_enrollment_flow,
        on_event=request_log,
    )
    bar = _ProgressBar()
    try:
        summary = run_sheet(
            input_path,
            out=out,
            options=options,
            summary_json=summary_json,
            journal=journal,
            resume=resume,
            on_progress=bar if not no_progress and sys.stderr.isatty() else None,
            sheet_name=sheet_name,
            max_input_mb=max_input_mb,
        )
    except BatchEnrollError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted before anything was sent", EXIT_INTERRUPTED)
    except OSError as exc:
        _fail(f"{exc.filename or ''}: {exc.strerror or exc}")
    finally:
        bar.close()
        if request_log is not None:
            request_log.close()
    _print_summary(summary)
    sys.exit(summary.exit_code)


def _trust(ca_bundle: Path | None) -> ssl.SSLContext | bool:
    """Return what TLS verification trusts: the system's CAs, or those of ``ca_bundle``."""
    if ca_bundle is None:
        return True
    import ssl  # here: it takes longer to import than click

    return ssl.create_default_context(cafile=str(ca_bundle))


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the per-row verdicts to this CSV.",
)
@_with(_input_options)
@_with(_connection_options)
@click.option(
    "--offline",
    is_flag=True,
    help="Check the cells only; do not read course and session rules from LMS365.",
)
@_require_session
@_summary_json
def validate(
    input_path: Path,
    report: Path | None,
    sheet_name: str | None,
    max_input_mb: float,
    base_url: str | None,
    api_key: str | None,
    api_key_file: Path | None,
    proxy: str | None,
    ca_bundle: Path | None,
    offline: bool,
    require_session: bool,
    summary_json: Path | None,
) -> None:
    """Check INPUT against LMS365's rules without enrolling anyone."""
    _crash_folder(report.parent if report is not None else None)
    options: RunOptions | None = None
    if not offline:
        connection = _connection(
            base_url=base_url,
            region=None,
            api_key=api_key,
            api_key_file=api_key_file,
            proxy=proxy,
            ca_bundle=ca_bundle,
            no_key=f"checking session rules reads the courses from LMS365: set {API_KEY_FILE_ENV}"
            f" or {API_KEY_ENV} (or pass --api-key-file), or pass --offline to check the"
            " cells only",
        )
        options = RunOptions(**connection, require_session=require_session)
    from batch_enroll.runner import validate_sheet

    try:
        summary = validate_sheet(
            input_path,
            report=report,
            options=options,
            summary_json=summary_json,
            sheet_name=sheet_name,
            max_input_mb=max_input_mb,
        )
    except BatchEnrollError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    _print_summary(summary)
    sys.exit(summary.exit_code)


def _parse_renames(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """Read ``--rename-field OLD=NEW`` values into a mapping."""
    renames: dict[str, str] = {}
    for value in values:
        old, sep, new = (part.strip() for part in value.partition("="))
        if not sep or not old or not new:
            raise click.BadParameter(f"{value!r} is not OLD=NEW, e.g. Title=Name")
        renames[old] = new
    return renames


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8365, show_default=True)
@click.option(
    "--latency-ms",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Delay added to every API answer.",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Throttle: requests per second per key (0: none); beyond it, 429 + Retry-After.",
)
@click.option(
    "--rate-schedule",
    metavar="S:R,S:R,...",
    help="Throttle that moves: R requests/s per key from S seconds after the first request,"
    " e.g. 0:100,15:40,30:100.",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests answered 500/502/503/504 without effect.",
)
@click.option(
    "--drop-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of enrollments made and then answered by a dropped connection.",
)
@click.option(
    "--catalog",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Courses, sessions, users and keys as JSON (default: the bundled sample).",
)
@click.option(
    "--rename-field",
    "rename_fields",
    multiple=True,
    metavar="OLD=NEW",
    callback=_parse_renames,
    help="Rename a field in every course and session served (repeatable), to mimic a tenant "
    "whose JSON differs.",
)
def simulate(
    host: str,
    port: int,
    latency_ms: float,
    rate_limit: float,
    rate_schedule: str | None,
    fault_rate: float,
    drop_rate: float,
    catalog: Path | None,
    rename_fields: dict[str, str],
) -> None:
    """Serve a local simulator of the LMS365 API until Ctrl+C."""
    from batch_enroll.simulator import create_app, load_catalog, serve
    from batch_enroll.simulator.throttle import RateSchedule

    try:
        schedule = RateSchedule.parse(rate_schedule) if rate_schedule is not None else None
    except ValueError as exc:
        _fail(f"--rate-schedule: {exc}")
    if schedule is not None and rate_limit:
        _fail("give --rate-limit or --rate-schedule, not both")

    try:
        loaded = load_catalog(catalog or _bundled("catalog.json"))
    except (OSError, ValueError) as exc:
        _fail(f"{catalog}: {exc}")
    app = create_app(
        loaded,
        latency_ms=latency_ms,
        rate_limit=rate_limit or None,
        rate_schedule=schedule,
        fault_rate=fault_rate,
        drop_rate=drop_rate,
        rename_fields=rename_fields,
    )
    click.echo(f"LMS365 simulator on http://{host}:{port} (Ctrl+C to stop)", err=True)
    try:
        serve(app, host=host, port=port)
    except KeyboardInterrupt:
        # uvicorn shuts down cleanly, then hands the Ctrl+C back to us.
        click.echo("Simulator stopped.", err=True)


AUTH_TOKEN_ENV = "BATCH_ENROLL_TOKEN"  # noqa: S105 (the variable's name, not a secret)


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; other than loopback only with --auth-token.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8366, show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("batch-enroll-data"),
    show_default=True,
    help="Where uploads, runs, results and their journals are kept (the history).",
)
@_with(_connection_options)
@_region
@click.option(
    "--auth-token",
    envvar=AUTH_TOKEN_ENV,
    show_envvar=True,
    help="Every request must carry this token (the page asks for it once); needed off loopback.",
)
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(0.01, 10_000),
    default=50.0,
    show_default=True,
    help="Largest sheet accepted; bigger uploads get a clear 413 answer.",
)
@_concurrency
@_rate
@_require_session
@_max_unenroll
def serve(
    host: str,
    port: int,
    data_dir: Path,
    base_url: str | None,
    api_key: str | None,
    api_key_file: Path | None,
    proxy: str | None,
    ca_bundle: Path | None,
    region: str | None,
    auth_token: str | None,
    max_upload_mb: float,
    concurrency: int,
    rate: float | None,
    require_session: bool,
    max_unenroll: str,
) -> None:
    """Serve the page: check a sheet, enroll it, download the results (until Ctrl+C)."""
    import logging

    from batch_enroll.validator import unenroll_limit
    from batch_enroll.web import WebConfig, create_app, is_loopback
    from batch_enroll.web.serve import run_server

    try:
        unenroll_limit(max_unenroll, 1)
    except ConfigError as exc:
        _fail(str(exc))
    connection = _connection(
        base_url=base_url,
        region=region,
        api_key=api_key,
        api_key_file=api_key_file,
        proxy=proxy,
        ca_bundle=ca_bundle,
    )
    loopback = is_loopback(host)
    if not loopback and not auth_token:
        _fail(
            f"refusing to listen on {host}: other machines could enroll with this server's key;"
            f" set {AUTH_TOKEN_ENV} (or --auth-token) so every request must carry it,"
            " or keep the default --host 127.0.0.1"
        )
    options = RunOptions(
        **connection,
        concurrency=concurrency,
        rate=rate,
        require_session=require_session,
        max_unenroll=max_unenroll,
    )
    config = WebConfig(
        data_dir=data_dir,
        options=options,
        max_upload_mb=max_upload_mb,
        auth_token=auth_token or None,
        # A loopback server without a token answers only to its own names, so a web
        # page elsewhere cannot reach it by pointing its own name at 127.0.0.1.
        allowed_hosts=frozenset({"127.0.0.1", "localhost", "[::1]"})
        if loopback and not auth_token
        else frozenset(),
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("httpx", "httpcore", "asyncio", "aiohttp", "hpack", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        app = create_app(config)
    except OSError as exc:
        _fail(f"{data_dir}: {exc.strerror or exc}")
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"batch-enroll serve on http://{shown}:{port} (Ctrl+C to stop)", err=True)
    click.echo(f"Runs, results and history are kept in {data_dir.resolve()}", err=True)
    run_server(app, host=host, port=port)


def _bundled(name: str) -> Path:
    from importlib import resources

    return Path(str(resources.files("batch_enroll") / "data" / name))


@main.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("results/demo-results.csv"),
    show_default=True,
    help="Where to write the demo's results CSV.",
)
def demo(out: Path) -> None:
    """Run the sample onboarding sheet against a built-in simulator."""
    from batch_enroll.runner import run_sheet
    from batch_enroll.simulator import SimulatorServer, create_app, load_catalog

    catalog = load_catalog(_bundled("catalog.json"))
    key = next(k.key for k in catalog.api_keys if k.access == "FullControl")
    # A little latency, throttling and flakiness, so the demo shows what the tool survives.
    app = create_app(catalog, latency_ms=20, rate_limit=40, fault_rate=0.05, seed=7)
    with SimulatorServer(app) as server:
        click.echo(f"Simulator listening on {server.base_url}", err=True)
        # The simulator is in this process: no proxy in the environment stands between.
        options = RunOptions(base_url=server.base_url, api_key=key, concurrency=8, trust_env=False)
        # From a checkout, show the sheet the README talks about; else the packaged copy.
        sheet = Path("sample_data/onboarding.csv")
        if not sheet.is_file():
            sheet = _bundled("onboarding.csv")
        journal = out.with_name(out.name + ".journal")
        journal.unlink(missing_ok=True)  # every demo starts afresh
        bar = _ProgressBar()
        try:
            summary = run_sheet(
                sheet, out=out, options=options, on_progress=bar if sys.stderr.isatty() else None
            )
        except BatchEnrollError as exc:
            _fail(str(exc))
        finally:
            bar.close()
    _print_summary(summary)
    from batch_enroll.reporter import render_resolved

    resolved = render_resolved(out)
    if resolved:
        click.echo(resolved)
    click.echo(f"The results CSV went to {out.resolve()}")


@main.command()
@_with(_connection_options)
@_region
@_timeout
@click.option(
    "--email",
    help="Look this person up in the Users check (default: an address no one has).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON, for scripts.")
def doctor(
    base_url: str | None,
    api_key: str | None,
    api_key_file: Path | None,
    proxy: str | None,
    ca_bundle: Path | None,
    region: str | None,
    timeout: float,
    email: str | None,
    as_json: bool,
) -> None:
    """Check, read-only, that LMS365 answers the way a run expects (safe on production)."""
    from batch_enroll.doctor import check_tenant, exit_code, render_json, render_text

    connection = _connection(
        base_url=base_url,
        region=region,
        api_key=api_key,
        api_key_file=api_key_file,
        proxy=proxy,
        ca_bundle=ca_bundle,
    )
    checks = check_tenant(ConnectionOptions(**connection, timeout=timeout), email=email)
    url = connection["base_url"]
    click.echo(render_json(checks, base_url=url) if as_json else render_text(checks, base_url=url))
    sys.exit(exit_code(checks))
