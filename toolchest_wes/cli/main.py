"""The ``toolchest-wes`` command: ``serve``, ``worker``, ``reconcile`` and ``sweep``."""

from __future__ import annotations

import json
import logging.config
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from toolchest_wes import __version__
from toolchest_wes.cli._common import parse_pairs
from toolchest_wes.cli.client_commands import register as register_client_commands
from toolchest_wes.cli.token_commands import token
from toolchest_wes.config import (
    AuthMode,
    ContainerRuntime,
    OutputLocations,
    SandboxMode,
    Settings,
)

__all__ = ["cli"]

_Command = Callable[..., Any]


@click.group()
@click.version_option(__version__, prog_name="toolchest-wes")
def cli() -> None:
    """toolchest-wes: a GA4GH WES 1.1 server that runs CWL workflows, and a client for any WES
    server (submit, status, wait, logs, outputs, download, list, cwl-runner)."""


def _common_options(command: _Command) -> _Command:
    """Options that the API and the workers must agree on."""
    options = [
        click.option(
            "--data-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Run records (embedded mode) and run directories; shared by the API and the "
            "workers in distributed mode, unless --storage keeps run files elsewhere.  "
            "[default: ~/.local/share/toolchest-wes]",
        ),
        click.option(
            "--redis",
            "redis_url",
            help="redis://host:port/db: distributed mode, with run records in Redis and runs "
            "on Celery workers.",
        ),
        click.option("--redis-prefix", help="Prefix of every Redis key.  [default: toolchest-wes]"),
        click.option(
            "--container-runtime",
            type=click.Choice([c.value for c in ContainerRuntime]),
            help="How tools with a DockerRequirement run.  [default: auto]",
        ),
        click.option(
            "--retention-days",
            type=float,
            help="Days a finished run keeps its outputs; 0 keeps them forever.  [default: 7]",
        ),
        click.option(
            "--sandbox",
            type=click.Choice([m.value for m in SandboxMode]),
            help="bwrap: each run in a sandbox of its own (bubblewrap); none: runs have the "
            "server's rights.  [default: bwrap with --auth tokens or oidc when bwrap works "
            "here, else none]",
        ),
        click.option(
            "--sandbox-allow-network/--sandbox-deny-network",
            default=None,
            help="Whether sandboxed tools that ask for the network (CWL NetworkAccess) get "
            "it.  [default: allow]",
        ),
        click.option(
            "--engine",
            "engines",
            multiple=True,
            metavar="NAME",
            help="An engine to offer: cwltool, toil or snakemake; repeat for several, the "
            "first for a workflow type being its default.  [default: auto, cwltool and every "
            "other engine installed]",
        ),
        click.option(
            "--run-default",
            "run_defaults",
            multiple=True,
            metavar="NAME=VALUE",
            callback=_pairs,
            help="A run's cores, memory or runtime unless it asks otherwise, such as "
            "cores=2, memory=4G, runtime=2h; repeatable.",
        ),
        click.option(
            "--run-limit",
            "run_limits",
            multiple=True,
            metavar="NAME=VALUE",
            callback=_pairs,
            help="The most cores, memory or runtime a run may ask for, such as cores=8; "
            "repeatable. A run that goes over its runtime or memory is stopped.",
        ),
        click.option(
            "--run-fixed",
            "run_fixed",
            multiple=True,
            metavar="NAME",
            help="A resource (cores, memory, runtime) users may not set per run; repeatable.",
        ),
        click.option(
            "--toil-venv",
            type=click.Path(file_okay=False, path_type=Path),
            help="Virtualenv with toil-cwl-runner and toil-wdl-runner.  [default: this "
            "server's environment, then PATH]",
        ),
        click.option(
            "--toil-batch-system",
            help="Toil's --batchSystem (slurm, kubernetes, ...).  [default: single_machine]",
        ),
        click.option(
            "--toil-jobstore-dir",
            help="Where Toil job stores go, for every node of the batch system: a shared "
            "folder, or a prefix such as aws:us-west-2:wes.  [default: each run's work folder]",
        ),
        click.option("--toil-args", help="Toil flags added to every run, one quoted string."),
        click.option(
            "--toil-wdl-container",
            type=click.Choice(["host", "singularity", "docker"]),
            help="How Toil runs WDL tasks.  [default: host]",
        ),
        click.option(
            "--snakemake-venv",
            type=click.Path(file_okay=False, path_type=Path),
            help="A virtualenv whose bin/snakemake runs SMK workflows.  [default: the "
            "snakemake installed with the server, else the one on PATH]",
        ),
        click.option(
            "--snakemake-allow-conda",
            is_flag=True,
            default=None,
            help="Let Snakemake runs ask for --use-conda.",
        ),
        click.option(
            "--snakemake-allow-apptainer",
            is_flag=True,
            default=None,
            help="Let Snakemake runs ask for --use-apptainer.",
        ),
        *_storage_options(),
        *_webhook_options(),
        click.option("--log-level", help="DEBUG, INFO, WARNING or ERROR.  [default: INFO]"),
        click.option(
            "--log-json", is_flag=True, default=None, help="Log one JSON object per line."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _storage_options() -> list[Any]:
    """Where run files are kept: every process must name the same storage."""
    return [
        click.option(
            "--storage",
            metavar="URL",
            help="Keep run files in s3://bucket/prefix (or a folder) instead of a data "
            "folder shared by the API and the workers; credentials and region come from the "
            "usual AWS settings.  [default: the data folder]",
        ),
        click.option(
            "--storage-endpoint-url",
            metavar="URL",
            help="An S3-compatible endpoint such as http://minio:9000.  [default: "
            "AWS_ENDPOINT_URL, else AWS]",
        ),
        click.option("--storage-region", help="The bucket's region.  [default: AWS_REGION]"),
        click.option(
            "--storage-presign",
            is_flag=True,
            default=None,
            help="Redirect output downloads and finished logs to presigned bucket URLs (after "
            "the token checks).",
        ),
    ]


def _webhook_options() -> list[Any]:
    """Webhook options: the API sends events, and every process records them."""
    return [
        click.option(
            "--webhook-secret",
            help="Signs the webhooks sent to runs' toolchest_wes.notify_url tags; prefer "
            "TOOLCHEST_WES_WEBHOOK_SECRET or --webhook-secret-file, which ps does not show.",
        ),
        click.option(
            "--webhook-secret-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="A file whose first line is the webhook secret.",
        ),
        click.option(
            "--webhook",
            "webhook",
            multiple=True,
            metavar="URL",
            help="Send every state change of every run here, signed with the webhook "
            "secret; repeatable.",
        ),
        click.option(
            "--webhooks",
            "webhooks_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="A JSON or YAML list of subscribers {url, secret, events: all|terminal}.",
        ),
        click.option(
            "--allow-private-webhooks",
            is_flag=True,
            default=None,
            help="Send webhooks to loopback and private hosts too.",
        ),
        click.option(
            "--webhook-allowed-hosts",
            help="Comma-separated hosts and networks (CIDR) webhooks may go to though not public.",
        ),
        click.option(
            "--webhook-retry-window",
            "webhook_retry_window_s",
            type=float,
            help="Seconds a failing webhook is retried.  [default: 86400]",
        ),
        click.option(
            "--webhook-backoff",
            "webhook_backoff_s",
            type=float,
            help="Seconds before a failed webhook's first retry; each next wait doubles, up "
            "to an hour.  [default: 5]",
        ),
    ]


def _check_engines(settings: Settings) -> None:
    from toolchest_wes.wiring.engines import check_engines

    try:
        check_engines(settings)
    except ValueError as exc:
        raise click.UsageError(f"--engine: {exc}") from None


def _check_storage(settings: Settings) -> None:
    """Fail now, not in every server process, on a storage that cannot be used at all."""
    if settings.storage is None:
        return
    from toolchest_wes.storage import storage_from_url

    try:
        storage_from_url(
            settings.storage,
            endpoint_url=settings.storage_endpoint_url,
            region=settings.storage_region,
        )
    except ValueError as exc:
        raise click.UsageError(f"--storage: {exc}") from None


def _pairs(
    _ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str] | None:
    """A repeatable ``NAME=VALUE`` option as a dict; ``None`` when not given."""
    if not values:
        return None
    return parse_pairs(values, f"--{(param.name or '').replace('_', '-').rstrip('s')}")


def _settings(flags: dict[str, Any]) -> tuple[Settings, dict[str, str]]:
    """Settings from flags over the environment, and the environment that carries them on."""
    # A repeatable option that was not given is an empty tuple: the environment decides.
    given = {k: v for k, v in flags.items() if v is not None and v != ()}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise click.UsageError(_validation_message(exc)) from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # gunicorn and celery processes build their own Settings from the environment, so the
    # flags travel there; the same names work for anyone who starts those directly.
    env = dict(os.environ)
    for key, value in given.items():
        # Lists and tables travel as JSON, which is how settings read them from the environment.
        if isinstance(value, (tuple, list, dict)):
            env[f"TOOLCHEST_WES_{key.upper()}"] = json.dumps(
                list(value) if isinstance(value, tuple) else value
            )
        else:
            env[f"TOOLCHEST_WES_{key.upper()}"] = str(value)
    env["TOOLCHEST_WES_DATA_DIR"] = str(settings.data_dir.resolve())
    return settings, env


@cli.command()
@click.option("--host", help="Address to listen on.  [default: 127.0.0.1]")
@click.option("--port", type=int, help="Port to listen on.  [default: 8080]")
@click.option(
    "--workers",
    type=int,
    help="API processes; in embedded mode one of them also executes the runs.  [default: 2]",
)
@click.option("--max-concurrent-runs", type=int, help="Runs executed at once (embedded mode).")
@click.option("--public-url", help="Base URL clients reach this server at, behind a proxy.")
@click.option("--threads", type=int, help="Request threads per process.  [default: 16]")
@click.option(
    "--auth",
    type=click.Choice([m.value for m in AuthMode]),
    help="Bearer-token authentication.  [default: off on a loopback --host, else tokens]",
)
@click.option(
    "--output-locations",
    type=click.Choice([o.value for o in OutputLocations]),
    help="Outputs in a RunLog as download URLs, or as file:// locations and paths for "
    "clients that share this server's file system.  [default: url]",
)
@click.option("--admin-users", help="Comma-separated users who see and may cancel every run.")
@click.option("--oidc-issuer", help="--auth oidc: the required issuer (iss).")
@click.option("--oidc-audience", help="--auth oidc: the required audience (aud).")
@click.option("--oidc-jwks", help="--auth oidc: the issuer's JWKS, an https URL or a file.")
@click.option("--oidc-user-claim", help="--auth oidc: the claim naming the user.  [default: sub]")
@click.option("--oidc-admin-claim", help="--auth oidc: a claim that can make a user an admin.")
@click.option(
    "--oidc-admin-value", help="--auth oidc: the admin claim's admin value.  [default: wes-admin]"
)
@click.option(
    "--oidc-client-id",
    help="--auth oidc: the dashboard's (public) client id; offers sign-in with the issuer.",
)
@click.option(
    "--oidc-authorization-endpoint",
    help="--auth oidc: the dashboard's authorization endpoint.  [default: discovered]",
)
@click.option(
    "--oidc-token-endpoint",
    help="--auth oidc: the dashboard's token endpoint.  [default: discovered]",
)
@click.option(
    "--oidc-scopes", help="--auth oidc: scopes the dashboard asks for.  [default: openid]"
)
@click.option(
    "--max-request-bytes", type=int, help="Largest POST /runs body.  [default: 1073741824 (1 GiB)]"
)
@click.option(
    "--max-active-runs-per-user",
    type=int,
    help="Unfinished runs one user may have; 0: no limit.  [default: 100 with --auth "
    "tokens or oidc, none with --auth off]",
)
@click.option(
    "--submit-rate",
    type=float,
    help="Submissions per minute per user, after a burst of --submit-burst; 0: no limit.  "
    "[default: 60 with --auth tokens or oidc, none with --auth off]",
)
@click.option("--submit-burst", type=int, help="See --submit-rate.  [default: 20]")
@click.option(
    "--allow-private-workflow-urls",
    is_flag=True,
    default=None,
    help="Fetch http(s) URLs on loopback, link-local and private addresses too.",
)
@click.option(
    "--workflow-url-allowed-hosts",
    help="Comma-separated hosts and networks (CIDR) that URLs may name although not public.",
)
@click.option(
    "--catalog",
    help="The workflow catalog served over TRS (/ga4gh/trs/v2) and run by name: a folder "
    "with one subfolder per tool, 'starter' or 'off'.  [default: starter]",
)
@click.option(
    "--catalog-only",
    is_flag=True,
    default=None,
    help="Refuse (403) every workflow that is not a tool of the catalog.",
)
@click.option(
    "--trs-allow",
    help="Comma-separated hosts of remote TRS registries that trs:// workflow URLs may name.",
)
@click.option(
    "--trs-registry",
    help="The TRS base URL that Dockstore-style ids (#workflow/...) resolve against.",
)
@_common_options
def serve(**flags: Any) -> None:
    """Start the WES API server under gunicorn.

    Without --redis this is the embedded mode: run records in a SQLite file in the data
    directory and runs executed by a pool inside the server (in one of its --workers
    processes, which the others hand their runs to). With --redis, runs go to Celery workers
    started with `toolchest-wes worker`.

    Every option can also be set as an environment variable: TOOLCHEST_WES_ and the option
    name in capitals, such as TOOLCHEST_WES_PORT=9000 (--redis is TOOLCHEST_WES_REDIS_URL).
    Options win over the environment.
    """
    settings, env = _settings(flags)
    from toolchest_wes.server.auth import check_auth_config

    try:
        check_auth_config(settings)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    sandbox = _check_sandbox(settings)
    _check_engines(settings)
    _check_storage(settings)
    from toolchest_wes.catalog.catalog import CatalogError
    from toolchest_wes.wiring.catalog import build_catalog

    try:
        build_catalog(settings)
    except CatalogError as exc:
        raise click.ClickException(f"--catalog: {exc}") from None
    mode = f"{'distributed' if settings.distributed else 'embedded'}, {settings.workers} processes"
    click.echo(
        f"toolchest-wes {__version__} ({mode}, auth {settings.effective_auth}, "
        f"sandbox {sandbox}): "
        f"http://{settings.host}:{settings.port}/ga4gh/wes/v1 "
        f"(data in {settings.data_dir.resolve()})",
        err=True,
    )
    _exec(
        env,
        "gunicorn",
        "-c",
        "python:toolchest_wes.server.gunicorn_conf",
        "toolchest_wes.server.wsgi:app",
    )


@cli.command()
@click.option("--concurrency", type=int, help="Runs this worker executes at once.  [default: CPUs]")
@click.option("--hostname", "-n", help="Celery node name.  [default: toolchest-wes@<host>]")
@_common_options
def worker(hostname: str | None, **flags: Any) -> None:
    """Start a Celery worker that executes runs (distributed mode).

    Needs --redis (or TOOLCHEST_WES_REDIS_URL), and either the same --data-dir as the API on
    a shared file system or the same --storage (then --data-dir is this worker's own scratch
    folder). The worker survives Redis restarts; if Celery ever exits unasked,
    this command starts it again (after 1 s, then up to 30 s between attempts).
    """
    settings, env = _settings(flags)
    if not settings.distributed:
        raise click.UsageError("a worker needs --redis (or TOOLCHEST_WES_REDIS_URL)")
    _check_sandbox(settings)
    _check_engines(settings)
    _check_storage(settings)
    from toolchest_wes.logconfig import build_logging_config
    from toolchest_wes.worker.supervisor import Supervisor

    logging.config.dictConfig(build_logging_config(settings))
    # A worker's bookkeeping yields the CPU to API processes on the same machine, as its
    # engine processes do (they add engine_nice on top).
    os.nice(settings.worker_nice)
    # Threads, not prefork: the executor only waits on the engine process, and one warm
    # engine process per worker serves every thread. Celery runs as a child that is started
    # again if it ever dies unasked (see worker/supervisor.py).
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "toolchest_wes.worker.main",
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(settings.concurrency),
        "--hostname",
        hostname or "toolchest-wes@%h",
        "--loglevel",
        settings.log_level,
        "--without-gossip",
        "--without-mingle",
    ]
    sys.exit(Supervisor(argv, env).run())


@cli.command()
@_common_options
def reconcile(**flags: Any) -> None:
    """Reconcile once, now: runs with an expired lease, and QUEUED runs whose message is gone."""
    settings, _env = _settings(flags)
    from toolchest_wes.logconfig import build_logging_config

    logging.config.dictConfig(build_logging_config(settings))
    if not settings.distributed:
        raise click.UsageError(
            "reconcile is for distributed mode (--redis); the embedded server reconciles "
            "when it starts"
        )
    from toolchest_wes.wiring.parts import Role, build_parts

    parts = build_parts(settings, Role.COMMAND)
    assert parts.reconciler is not None  # distributed mode
    try:
        report = parts.reconciler.run_once(force=True)
    finally:
        parts.close()
    assert report is not None
    click.echo(
        json.dumps(
            {"requeued": report.requeued, "failed": report.failed, "cancelled": report.cancelled}
        )
    )


@cli.command()
@_common_options
def sweep(**flags: Any) -> None:
    """Remove expired outputs once, now (the server also does it every few minutes)."""
    settings, _env = _settings(flags)
    from toolchest_wes.logconfig import build_logging_config

    logging.config.dictConfig(build_logging_config(settings))
    from toolchest_wes.core.retention import sweep_outputs
    from toolchest_wes.wiring.parts import Role, build_parts

    removed: list[str] = []
    if settings.retention_s is not None:
        parts = build_parts(settings, Role.COMMAND)
        try:
            removed = sweep_outputs(parts.store, parts.workspace, settings.retention_s, parts.files)
        finally:
            parts.close()
    click.echo(json.dumps({"removed": removed}))


def _check_sandbox(settings: Settings) -> SandboxMode:
    """The runs' sandbox; a sandbox asked for that cannot work stops the command here."""
    from toolchest_wes.wiring.sandbox import SandboxUnavailableError, check_sandbox

    try:
        return check_sandbox(settings)
    except SandboxUnavailableError as exc:
        raise click.ClickException(str(exc)) from None


def _exec(env: dict[str, str], module: str, *args: str) -> None:
    """Replace this process with ``python -m module args`` (signals then go straight to it)."""
    os.execve(sys.executable, [sys.executable, "-m", module, *args], env)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "settings"
        parts.append(f"--{where.replace('_', '-')}: {error['msg']}")
    return "; ".join(parts)


cli.add_command(token)
register_client_commands(cli)


def main() -> None:
    """Run the CLI."""
    cli()


if __name__ == "__main__":
    main()
