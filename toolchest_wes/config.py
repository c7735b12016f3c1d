"""Settings: the one object every entry point builds and passes down."""

from __future__ import annotations

import ipaddress
import os
import shutil
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from toolchest_wes.core.resources import ResourcePolicy

__all__ = [
    "AuthMode",
    "ContainerRuntime",
    "OutputLocations",
    "SandboxMode",
    "Settings",
    "default_data_dir",
    "detect_container_runtime",
    "is_loopback",
]

MIB = 1024 * 1024
GIB = 1024 * MIB

#: Per-user limits of a server with authentication (without it, there are none by default).
DEFAULT_MAX_ACTIVE_RUNS_PER_USER = 100
DEFAULT_SUBMIT_RATE = 60.0


class ContainerRuntime(StrEnum):
    """How cwltool runs tools that ask for a container."""

    AUTO = "auto"
    DOCKER = "docker"
    PODMAN = "podman"
    SINGULARITY = "singularity"
    NONE = "none"


class AuthMode(StrEnum):
    """How the API authenticates requests."""

    TOKENS = "tokens"
    OIDC = "oidc"
    OFF = "off"


class OutputLocations(StrEnum):
    """What the ``location`` of an output File or Directory in a RunLog is."""

    #: A download URL on this server: works for every client, anywhere.
    URL = "url"
    #: A ``file://`` URL and ``path`` in the run's outputs folder: for clients that see the
    #: server's file system at the same path (one host, a cluster's shared storage).
    FILE = "file"


class SandboxMode(StrEnum):
    """What confines the processes of a run."""

    #: Each run's engine in namespaces of its own, each tool in bubblewrap.
    BWRAP = "bwrap"
    #: Runs have the server's rights.
    NONE = "none"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/toolchest-wes``, or ``~/.local/share/toolchest-wes``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "toolchest-wes"


def detect_container_runtime() -> ContainerRuntime:
    """The first container runtime that can actually run containers here, else ``NONE``.

    A ``docker`` binary alone is not enough: many machines have the client but no engine, so
    Docker also needs a reachable daemon socket (or ``DOCKER_HOST``).
    """
    if shutil.which("docker") and (
        os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()
    ):
        return ContainerRuntime.DOCKER
    if shutil.which("podman"):
        return ContainerRuntime.PODMAN
    if shutil.which("singularity") or shutil.which("apptainer"):
        return ContainerRuntime.SINGULARITY
    return ContainerRuntime.NONE


class Settings(BaseSettings):
    """Server settings.

    Precedence: command-line flags, then ``TOOLCHEST_WES_*`` environment variables, then the
    defaults below. The CLI turns its flags into constructor arguments, so every process (API
    and workers) reads the same names.
    """

    model_config = SettingsConfigDict(env_prefix="TOOLCHEST_WES_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    redis_url: str | None = Field(
        default=None,
        description=(
            "Distributed mode: Redis for run records and as the Celery broker and result "
            "backend. Unset: embedded mode (SQLite and a local run pool)."
        ),
    )
    redis_prefix: str = Field(default="toolchest-wes", min_length=1)
    store_url: str | None = Field(
        default=None,
        description="Where run records live; default: Redis in distributed mode, else SQLite.",
    )
    broker_url: str | None = Field(default=None, description="Celery broker; default: redis_url.")
    workers: int = Field(
        default=2,
        ge=1,
        description="API processes of the server; in embedded mode one of them also executes "
        "the runs.",
    )
    concurrency: int = Field(
        default_factory=lambda: max(2, os.cpu_count() or 2),
        ge=1,
        description="Runs one Celery worker process executes at once.",
    )
    visibility_timeout_s: int = Field(
        default=12 * 3600,
        ge=60,
        description=(
            "How long Redis keeps a delivered but unacknowledged run message before another "
            "worker may take it; longer than the longest run."
        ),
    )
    lease_ttl_s: float = Field(
        default=30.0, gt=0, description="A running run without a heartbeat for this long is lost."
    )
    reconcile_interval_s: float = Field(default=10.0, gt=0)
    queue_lost_after_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "A QUEUED run this old whose message is neither waiting in the queue nor was "
            "delivered to a worker within this time is queued again."
        ),
    )
    worker_heartbeat_interval_s: float = Field(
        default=5.0, gt=0, description="How often each worker records its heartbeat in Redis."
    )
    worker_heartbeat_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "A worker whose last heartbeat (with its consumer taking runs) is older than this "
            "counts as gone; with none left, GET /health answers 503 and POST /runs warns."
        ),
    )
    log_json: bool = Field(default=False, description="Log one JSON object per line.")
    public_url: str | None = Field(
        default=None,
        description="Base URL clients use (behind a proxy); default: taken from each request.",
    )
    max_concurrent_runs: int = Field(default_factory=lambda: max(2, os.cpu_count() or 2), ge=1)
    container_runtime: ContainerRuntime = ContainerRuntime.AUTO
    output_locations: OutputLocations = Field(
        default=OutputLocations.URL,
        description=(
            "url: outputs in a RunLog are download URLs; file: file:// locations and paths "
            "in the run's outputs folder, for clients that share the server's file system."
        ),
    )
    allow_no_container: bool = Field(
        default=True, description="Whether a run may ask for --no-container."
    )
    default_engine_parameters: list[str] = Field(
        default_factory=list, description="cwltool flags added to every run."
    )
    engines: list[str] = Field(
        default_factory=lambda: ["auto"],
        description=(
            "The engines to offer, by name (cwltool, toil, snakemake); the first for a "
            "workflow type is its default. auto: cwltool and every other engine installed."
        ),
    )
    run_defaults: dict[str, str] = Field(
        default_factory=dict,
        description="Each run's cores, memory and runtime unless it asks otherwise.",
    )
    run_limits: dict[str, str] = Field(
        default_factory=dict,
        description="The most cores, memory and runtime a run may ask for.",
    )
    run_fixed: list[str] = Field(
        default_factory=list,
        description="Resources (cores, memory, runtime) that users may not set per run.",
    )
    warm_engine: bool = Field(
        default=True,
        description="Fork engine processes from a warm interpreter that has cwltool loaded.",
    )
    engine_spare: bool = Field(
        default=True,
        description=(
            "With warm_engine: keep two engine processes forked and prepared ahead of the next "
            "runs while a CPU is idle, taking the fork's copy-on-write faults off a run's path."
        ),
    )
    engine_reuse: bool = Field(
        default=True,
        description=(
            "With warm_engine: an engine process whose run ended by itself with exit code 0 "
            "and was not sandboxed takes the next run instead of exiting (about two thirds "
            "less CPU for a short run); false: one process per run."
        ),
    )
    engine_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness of engine processes: workflows yield the CPU to the server.",
    )
    worker_nice: int = Field(
        default=5,
        ge=0,
        le=19,
        description="Niceness of `toolchest-wes worker` processes: they yield to the API.",
    )
    cancel_grace_s: float = Field(default=1.0, ge=0)
    poll_interval_s: float = Field(default=0.2, gt=0)
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    log_level: str = "INFO"
    threads: int = Field(default=16, ge=1, description="Request threads of the server process.")
    auth: AuthMode | None = Field(
        default=None,
        description=(
            "tokens, oidc or off; default: off on a loopback host, tokens on any other "
            "(see effective_auth)."
        ),
    )
    admin_users: str = Field(
        default="",
        description="Comma-separated users who see and may cancel every run.",
    )
    oidc_issuer: str | None = Field(default=None, description="Required `iss` of OIDC tokens.")
    oidc_audience: str | None = Field(default=None, description="Required `aud` of OIDC tokens.")
    oidc_jwks: str | None = Field(
        default=None, description="The issuer's JWKS: an http(s) URL or a file path."
    )
    oidc_user_claim: str = Field(default="sub", min_length=1)
    oidc_admin_claim: str | None = Field(
        default=None,
        description=(
            "A claim (dots reach into objects, as in realm_access.roles) that makes a user "
            "an admin when it is, or contains, oidc_admin_value."
        ),
    )
    oidc_admin_value: str = Field(default="wes-admin", min_length=1)
    oidc_client_id: str | None = Field(
        default=None,
        description=(
            "--auth oidc: the dashboard's client id at the issuer (a public client); when "
            "set, the dashboard offers to sign in with the issuer."
        ),
    )
    oidc_authorization_endpoint: str | None = Field(
        default=None,
        description=(
            "The issuer's authorization endpoint for the dashboard's sign-in; unset: the "
            "browser reads it from the issuer's /.well-known/openid-configuration."
        ),
    )
    oidc_token_endpoint: str | None = Field(
        default=None,
        description="The issuer's token endpoint; unset: read as oidc_authorization_endpoint.",
    )
    oidc_scopes: str = Field(
        default="openid", min_length=1, description="Scopes the dashboard's sign-in asks for."
    )
    auth_instructions_url: str = Field(
        default="https://pypi.org/project/toolchest-wes/",
        description=(
            "Where users learn how to get a token; served in service-info. The default, the "
            "project page, shows the README and its Security section."
        ),
    )
    retention_days: float = Field(
        default=7.0,
        ge=0,
        description=(
            "Days a finished run keeps its outputs, work files and attachments; 0 keeps them "
            "forever. The run record and its logs are always kept."
        ),
    )
    retention_sweep_interval_s: float = Field(
        default=300.0, gt=0, description="How often expired outputs are removed."
    )
    max_request_bytes: int = Field(
        default=GIB,
        ge=1024,
        description="Largest request body; a larger POST /runs answers 413.",
    )
    max_attachments: int = Field(
        default=1000, ge=1, description="Most workflow_attachment files in one POST /runs."
    )
    max_attachment_bytes: int = Field(
        default=GIB, ge=1, description="Most bytes of all attachments of one POST /runs together."
    )
    max_params_bytes: int = Field(
        default=MIB,
        ge=1024,
        description="Largest workflow_params JSON text (and any other text field).",
    )
    max_active_runs_per_user: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Runs one user may have that are not finished yet (QUEUED to CANCELING); more "
            "submissions answer 429. 0: no limit. Unset: 100 with authentication, no limit "
            "without (see effective_max_active_runs_per_user)."
        ),
    )
    submit_rate: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Submissions one user may make per minute, on average; 0: no limit. Unset: 60 "
            "with authentication, no limit without (see effective_submit_rate)."
        ),
    )
    submit_burst: int = Field(
        default=20,
        ge=1,
        description="Submissions one user may make at once before submit_rate applies.",
    )
    idempotency_window_s: float = Field(
        default=24 * 3600.0,
        gt=0,
        description=(
            "How long the Idempotency-Key of a POST /runs stands for the run it made: the "
            "same key from the same user within this time returns that run's id."
        ),
    )
    allow_private_workflow_urls: bool = Field(
        default=False,
        description=(
            "Accept http(s) workflow_url hosts on loopback, link-local, private and other "
            "non-public addresses."
        ),
    )
    workflow_url_allowed_hosts: str = Field(
        default="",
        description=(
            "Comma-separated host names and networks (CIDR) a workflow_url may name even "
            "though they are not public, such as git.internal,10.1.0.0/16."
        ),
    )

    catalog: str = Field(
        default="starter",
        description=(
            "The workflow catalog served over TRS and run by name: a folder with one "
            "subfolder per tool, 'starter' for the catalog shipped with toolchest-wes, or "
            "'off' for none."
        ),
    )
    catalog_only: bool = Field(
        default=False,
        description="Refuse (403) every workflow that is not a tool of the catalog.",
    )
    trs_allow: str = Field(
        default="",
        description=(
            "Comma-separated hosts (host or host:port) of remote TRS registries that trs:// "
            "workflow URLs may name; the http(s) URL policy applies to them too."
        ),
    )
    trs_registry: str | None = Field(
        default=None,
        description=(
            "The TRS registry (its base URL, such as https://dockstore.org/api/ga4gh/trs/v2) "
            "that Dockstore-style ids such as #workflow/github.com/org/repo resolve against; "
            "its host must be in trs_allow."
        ),
    )

    sandbox: SandboxMode | None = Field(
        default=None,
        description=(
            "bwrap: every run in a sandbox of its own; none: runs have the server's rights. "
            "Unset: bwrap when authentication is on and bwrap works here, else none (see "
            "effective_sandbox)."
        ),
    )
    sandbox_allow_network: bool = Field(
        default=True,
        description="Give the network to sandboxed tools that ask for it (NetworkAccess).",
    )
    sandbox_max_processes: int = Field(
        default=1024,
        ge=0,
        description="Processes and threads of one sandboxed run at once; 0: no limit.",
    )
    sandbox_max_file_bytes: int = Field(
        default=64 * GIB, ge=0, description="Largest file a sandboxed run writes; 0: no limit."
    )
    sandbox_max_memory_bytes: int = Field(
        default=0,
        ge=0,
        description="Address space of each sandboxed tool process; 0: no limit.",
    )
    redis_password: SecretStr | None = Field(
        default=None,
        description="Password of Redis, when the URL has none (TOOLCHEST_WES_REDIS_PASSWORD).",
    )
    redis_password_file: Path | None = Field(
        default=None,
        description="A file whose first line is the Redis password (Docker and k8s secrets).",
    )

    # -- Toil (toolchest_wes.engines.toil_engine) ------------------------------------------
    toil_venv: Path | None = Field(
        default=None,
        description="Virtualenv holding toil-cwl-runner and toil-wdl-runner; without it "
        "this server's own environment, then PATH.",
    )
    toil_batch_system: str = Field(
        default="single_machine",
        min_length=1,
        description="Toil's --batchSystem: single_machine, slurm, kubernetes, ...",
    )
    toil_jobstore_dir: str | None = Field(
        default=None,
        description="Where Toil job stores go (one per run) for every node of the batch "
        "system to reach: a folder on shared storage, or a locator prefix such as "
        "aws:us-west-2:wes; default: inside each run's work folder.",
    )
    toil_args: str = Field(
        default="", description="Toil flags added to every run, as one shell-quoted string."
    )
    toil_wdl_container: str = Field(
        default="host",
        pattern="^(host|singularity|docker)$",
        description="How WDL tasks run: host (no container, in bubblewrap), singularity or docker.",
    )

    # -- Snakemake engine (workflow_type SMK; see engines/snakemake_engine.py) -----------------
    snakemake_venv: Path | None = Field(
        default=None,
        description=(
            "A virtualenv whose bin/snakemake runs SMK workflows; unset: the snakemake "
            "installed with the server (toolchest-wes[snakemake]), else the one on PATH."
        ),
    )
    snakemake_allow_conda: bool = Field(
        default=False, description="Whether a Snakemake run may ask for --use-conda."
    )
    snakemake_allow_apptainer: bool = Field(
        default=False,
        description="Whether a Snakemake run may ask for --use-apptainer (--use-singularity).",
    )

    # -- run files in object storage (core/run_files.py) --------------------------------------
    storage: str | None = Field(
        default=None,
        description="Where run files are kept between the API and the workers: "
        "s3://bucket/prefix (an S3-compatible bucket) or a folder. Unset: in data_dir, which "
        "every process then shares.",
    )
    storage_endpoint_url: str | None = Field(
        default=None,
        description="The S3 endpoint (MinIO, Ceph, ...); default: AWS_ENDPOINT_URL, else AWS.",
    )
    storage_region: str | None = Field(
        default=None, description="The bucket's region; default: AWS_REGION, then AWS config."
    )
    storage_presign: bool = Field(
        default=False,
        description="Answer output downloads and finished runs' logs with a redirect to a "
        "presigned URL of the bucket, after the usual token and ownership checks.",
    )
    storage_presign_expiry_s: int = Field(default=300, ge=1, le=7 * 86400)
    storage_log_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="How often what a running run's logs gained is uploaded (as parts).",
    )

    @field_validator("storage")
    @classmethod
    def _check_storage(cls, value: str | None) -> str | None:
        if value is not None and "://" in value and not value.startswith(("s3://", "file://")):
            raise ValueError(f"{value!r}: use s3://bucket/prefix or a folder")
        if value is not None and value.startswith("s3://") and not value[5:].strip("/"):
            raise ValueError(f"{value!r} names no bucket: use s3://bucket/prefix")
        return value or None

    # -- webhooks (core/webhooks.py) ---------------------------------------------------------
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Signs the deliveries to each run's notify_url tag; without it (or "
        "webhook_secret_file) runs may not ask for webhooks.",
    )
    webhook_secret_file: Path | None = Field(
        default=None, description="A file whose first line is webhook_secret."
    )
    webhook: list[str] = Field(
        default_factory=list,
        description="URLs sent every state change of every run, signed with webhook_secret.",
    )
    webhooks_file: Path | None = Field(
        default=None,
        description="A JSON or YAML list of {url, secret, events: all|terminal}: the "
        "server's subscribers, each with a secret of its own.",
    )
    allow_private_webhooks: bool = Field(
        default=False,
        description="Send webhooks to loopback, link-local and private hosts too.",
    )
    webhook_allowed_hosts: str = Field(
        default="",
        description="Comma-separated host names and networks (CIDR) webhooks may be sent to "
        "even though they are not public.",
    )
    webhook_retry_window_s: float = Field(
        default=86400.0, gt=0, description="How long a failing delivery is retried."
    )
    webhook_backoff_s: float = Field(
        default=5.0, gt=0, description="The wait before the first retry; it doubles each time."
    )
    webhook_backoff_max_s: float = Field(default=3600.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_poll_s: float = Field(default=1.0, gt=0)

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @field_validator("workflow_url_allowed_hosts", "webhook_allowed_hosts")
    @classmethod
    def _check_allowed_networks(cls, value: str) -> str:
        for entry in (e.strip().strip("[]") for e in value.split(",")):
            if "/" in entry or ":" in entry or (entry and entry.replace(".", "").isdigit()):
                ipaddress.ip_network(entry, strict=False)  # ValueError names the entry
        return value

    @property
    def catalog_dir(self) -> Path | None:
        """The catalog folder: ``catalog``, with ``starter`` and ``off`` resolved."""
        if self.catalog.strip().lower() in ("off", "none", ""):
            return None
        if self.catalog == "starter":
            from toolchest_wes.catalog.catalog import starter_dir

            return starter_dir()
        return Path(self.catalog).expanduser()

    @property
    def trs_allowed_hosts(self) -> frozenset[str]:
        """``trs_allow`` as a set of lower-case hosts."""
        return frozenset(h.strip().lower() for h in self.trs_allow.split(",") if h.strip())

    @model_validator(mode="after")
    def _check_resources(self) -> Settings:
        self.resource_policy  # noqa: B018 (raises ValueError naming a bad setting)
        return self

    @property
    def resource_policy(self) -> ResourcePolicy:
        """``run_defaults``, ``run_limits`` and ``run_fixed`` as the policy runs are held to."""
        return ResourcePolicy.from_settings(self.run_defaults, self.run_limits, self.run_fixed)

    @model_validator(mode="after")
    def _check_oidc(self) -> Settings:
        if self.effective_auth is AuthMode.OIDC:
            missing = [
                f"--{name.replace('_', '-')}"
                for name in ("oidc_issuer", "oidc_audience", "oidc_jwks")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"--auth oidc needs {', '.join(missing)}")
        return self

    @property
    def effective_auth(self) -> AuthMode:
        """``auth``; unset: ``off`` on a loopback host, ``tokens`` on any other."""
        if self.auth is not None:
            return self.auth
        return AuthMode.OFF if is_loopback(self.host) else AuthMode.TOKENS

    @property
    def effective_max_active_runs_per_user(self) -> int:
        """``max_active_runs_per_user``; unset: 100 with authentication, 0 (none) without.

        Without authentication every request is one anonymous user, so a per-user cap would
        throttle the whole server, and a personal server's only user most of all.
        """
        if self.max_active_runs_per_user is not None:
            return self.max_active_runs_per_user
        return 0 if self.effective_auth is AuthMode.OFF else DEFAULT_MAX_ACTIVE_RUNS_PER_USER

    @property
    def effective_submit_rate(self) -> float:
        """``submit_rate``; unset: 60 a minute with authentication, 0 (none) without."""
        if self.submit_rate is not None:
            return self.submit_rate
        return 0.0 if self.effective_auth is AuthMode.OFF else DEFAULT_SUBMIT_RATE

    @property
    def admin_user_names(self) -> frozenset[str]:
        """``admin_users`` as a set of names."""
        return frozenset(u.strip() for u in self.admin_users.split(",") if u.strip())

    @property
    def tokens_file(self) -> Path:
        """The API token file (``--auth tokens``)."""
        return self.data_dir / "tokens.json"

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def retention_s(self) -> float | None:
        """The retention period in seconds, or ``None`` for forever (``retention_days=0``)."""
        return self.retention_days * 86400 if self.retention_days > 0 else None

    @property
    def runs_dir(self) -> Path:
        """Where run directories live."""
        return self.data_dir / "runs"

    @property
    def distributed(self) -> bool:
        """Whether runs go to Celery workers (``redis_url`` set) rather than a local pool."""
        return self.redis_url is not None

    @property
    def effective_store_url(self) -> str:
        """``store_url``; else Redis in distributed mode, else the SQLite file in ``data_dir``."""
        if self.store_url:
            return self.store_url
        if self.redis_url:
            return self.redis_url
        return f"sqlite:///{(self.data_dir / 'runs.sqlite').resolve()}"

    @property
    def effective_broker_url(self) -> str | None:
        """``broker_url``, or ``redis_url``."""
        return self.broker_url or self.redis_url

    @property
    def effective_container_runtime(self) -> ContainerRuntime:
        """``container_runtime`` with ``auto`` resolved on this machine."""
        if self.container_runtime is ContainerRuntime.AUTO:
            return detect_container_runtime()
        return self.container_runtime

    @model_validator(mode="after")
    def _apply_redis_password(self) -> Settings:
        # The password comes from the environment or a file, never from a command line
        # where every user of the host could read it; redis-py, kombu and Celery all take
        # it from the URL, so it goes there, once, for every URL that names Redis.
        password = self.redis_password.get_secret_value() if self.redis_password else None
        if self.redis_password_file is not None:
            try:
                lines = self.redis_password_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ValueError(f"cannot read the Redis password file: {exc}") from exc
            password = lines[0].strip() if lines else ""
        if password:
            from toolchest_wes.redis_auth import with_password

            self.redis_url = with_password(self.redis_url, password)
            self.store_url = with_password(self.store_url, password)
            self.broker_url = with_password(self.broker_url, password)
        return self

    @property
    def sandbox_uid(self) -> int | None:
        """The uid runs take: nobody's when the server is root; ``None`` keeps the server's."""
        from toolchest_wes.engines.sandbox import NOBODY

        return NOBODY if os.geteuid() == 0 else None

    @property
    def effective_sandbox(self) -> SandboxMode:
        """``sandbox``; unset: ``bwrap`` with authentication when bwrap works here, else ``none``.

        Without authentication every run belongs to one anonymous user, so a sandbox
        would keep runs apart from no one but the server itself.
        """
        if self.sandbox is not None:
            return self.sandbox
        if self.effective_auth is AuthMode.OFF:
            return SandboxMode.NONE
        return SandboxMode.BWRAP if self.sandbox_problem() is None else SandboxMode.NONE

    def sandbox_problem(self) -> str | None:
        """Why the bwrap sandbox cannot work here, or ``None`` if it can: bwrap itself, and
        whether the run's uid can reach the data folder."""
        from toolchest_wes.engines.sandbox import bwrap_problem, unreachable_data_dir

        return bwrap_problem(self.sandbox_uid) or unreachable_data_dir(
            self.data_dir, self.sandbox_uid
        )
