"""The one settings object. Built once (``Settings()``) and passed in; never a module global."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IVR_", env_file=".env", extra="ignore")

    # Storage. SQLite file by default; PostgreSQL (postgresql+psycopg://...) in production.
    database_url: str = "sqlite:///ivr.db"
    # Connections kept open per process (PostgreSQL), and as many use cases at once on the
    # event loop (``Database.run``); the menu steps' pool has as many again.
    db_pool_size: int = Field(default=16, ge=1, le=256)
    # How long a SQLite write waits for another process's lock before giving up.
    sqlite_busy_timeout_ms: int = Field(default=2000, ge=0)
    # PostgreSQL behind PgBouncer in transaction pooling (issue 18): IVR_DATABASE_URL names
    # the pooler and this names the database itself. The request pools then prepare no
    # statements on the server and keep no session state; LISTEN, session advisory locks
    # and migrations use this direct connection. Unset: IVR_DATABASE_URL is the database.
    database_direct_url: str | None = None

    # Menus: a folder of YAML files; the entry menu answers every new call.
    menus_dir: Path = Path("menus")
    entry_menu: str = "main"
    watch_menus: bool = True

    # Twilio. Signatures cover the URL Twilio called, so behind a proxy set public_url
    # to the scheme+host Twilio uses (e.g. https://ivr.example.com); the request's own
    # Host header is then ignored.
    twilio_auth_token: SecretStr = SecretStr("")
    # SharedKey signing (X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=<alg>):
    # JSON object {"<shared key id>": "<secret>", ...}; several ids allow rotation.
    twilio_shared_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)
    public_url: str | None = None
    # Proxies in front (addresses or networks, comma-separated: 10.0.0.5,10.1.0.0/16) whose
    # X-Forwarded-Proto/-Host/-For are believed (ivr.core.proxies); nobody else's are.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Explicitly turning the signature check off logs a warning at every start.
    validate_signatures: bool = True

    # Admin API (menu reload, customer look-ups). The environment's tokens, one per role
    # (this, crm_token, metrics_token), are the token itself or "sha256:<64 hex>" (its
    # SHA-256: the configuration then never holds the token); more tokens, stored hashed, with
    # `ivr tokens create`. Empty: only the tokens made with `ivr tokens`.
    admin_token: SecretStr = SecretStr("")

    # Where a caller goes when something fails inside (no menu, database down, ...).
    safe_queue: str = "operator"
    # Optional hold music for callers waiting in a queue (else a spoken hold message).
    hold_music_url: str | None = None

    # Customer store: crm/rules.yaml (identity rules) and crm/mappings/*.yaml (per-source
    # field mappings for pushed records). The integration token lets a CRM push records
    # (POST /crm/sources/{source}/records) and nothing else; the admin token may too.
    crm_dir: Path = Path("crm")
    crm_token: SecretStr = SecretStr("")

    # Agents and routing. With a Twilio account SID (and the auth token above) waiting
    # callers are dequeued through the Queue Members REST API at once; without, the wait
    # loop releases them (<Leave/>) within hold_poll_seconds (the demo, the simulator).
    twilio_account_sid: str = ""
    agent_session_hours: float = Field(default=12, gt=0)
    agent_ring_timeout: int = Field(default=20, ge=5, le=600)
    # An offer whose caller never reaches the connect webhook is taken back after this.
    offer_timeout_seconds: int = Field(default=30, ge=5)
    hold_poll_seconds: int = Field(default=5, ge=1, le=60)
    # A queued caller proves it is alive: its wait loop polls every round (the pause above,
    # 20 s with the REST API, plus up to 15 s spoken). An entry silent this many rounds is
    # checked by the sweep: with an account SID Twilio is asked (closed only if the call is
    # over), without the caller is presumed gone. An offer that expired this many times
    # closes the entry too (nothing waits for a status callback that may never come).
    queue_silent_rounds: int = Field(default=6, ge=2)
    queue_max_expired_offers: int = Field(default=3, ge=1)
    # How often each process sweeps: expired offers, calls and agents left unmatched (0: off).
    route_every_seconds: float = Field(default=1.0, ge=0)
    # A caller who called within this window is a repeat caller (screen-pop, routing).
    repeat_window_minutes: int = Field(default=120, ge=1)
    # Queues whose choice in the IVR is a leaving-risk signal on the screen-pop.
    leaving_risk_queues: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["retention"])
    # The demo's agent and supervisor password (`ivr agents demo`; run.sh writes it to .env).
    demo_agent_password: SecretStr = SecretStr("")
    # Sign-in throttle (POST /agent/login): failed sign-ins in a sliding window, counted in
    # the database (every process shares it), per account and per client address (a whole
    # centre behind one NAT address shares the second). Over either: 429 with Retry-After.
    login_window_seconds: int = Field(default=300, ge=1)
    login_max_failures: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=30, ge=1)
    # Password checks (scrypt, about 0.1 s of a core each) run in this many threads, never
    # on the event loop; at most login_max_pending sign-ins in progress (more: 503).
    login_hash_threads: int = Field(default=1, ge=1, le=16)
    login_max_pending: int = Field(default=32, ge=1)
    # This site's name on incidents agents open (another branch sees where it came from).
    branch_name: str | None = None

    # CRM sync and outbox: crm/sources/*.yaml (source CRMs `ivr crm sync` and `ivr worker`
    # pull from) and crm/subscribers.yaml (systems our changes are posted to). Tokens and
    # signing secrets come from the environment variables those files name.
    crm_sync_every_s: int = Field(default=300, ge=1)  # a source without `every:` in its file
    outbox_batch: int = Field(default=100, ge=1, le=10_000)  # events claimed per round
    outbox_max_attempts: int = Field(default=8, ge=1)  # then the event is a dead letter
    outbox_backoff_base_s: float = Field(default=2.0, gt=0)  # first retry within this
    outbox_backoff_cap_s: float = Field(default=3600.0, gt=0)  # longest wait between tries
    outbox_lease_s: float = Field(default=120.0, gt=0)  # a claimed batch's lease
    outbox_every_s: float = Field(default=1.0, gt=0)  # worker polls the outbox this often
    outbox_keep_delivered_s: int = Field(default=7 * 86400, ge=0)  # then they are deleted

    # Post-call surveys (issue 17.1): which queues' callers are surveyed after the agent
    # hangs up, the questions and the low score (surveys.yaml, see README). No file: off.
    surveys_file: Path = Path("surveys.yaml")

    # Callbacks: SLA policies and the offer per queue (callbacks.yaml, see README).
    callbacks_file: Path = Path("callbacks.yaml")
    # This process claims and dials due callbacks (`ivr worker` always does; `ivr serve`
    # too when true, so the one-process demo works; set false on servers when workers run).
    dispatch_callbacks: bool = True
    # A claim (agent reserved, customer being dialled) not confirmed by Twilio within this
    # is taken over by another process (its owner died).
    callback_lease_seconds: float = Field(default=60.0, gt=0)
    # The number callbacks are placed from (E.164); empty: the number the caller called.
    callback_caller_id: str = ""
    # Abuse guard: requests per number (caller ID or number to call) per day, and requests
    # to call a number other than the caller ID, per caller ID per day.
    callback_daily_cap: int = Field(default=3, ge=1)
    callback_other_number_daily_cap: int = Field(default=1, ge=0)
    # Answering machine detection on callbacks (Twilio's MachineDetection=Enable).
    callback_machine_detection: bool = True
    # Warning, breach and escalation events are POSTed here (HMAC-SHA256 signed with the
    # secret, header X-IVR-Signature) when set.
    callback_escalation_url: str | None = None
    callback_escalation_secret: SecretStr = SecretStr("")
    # How often `ivr worker` sweeps callbacks (claims, leases, warnings, breaches).
    callback_every_s: float = Field(default=1.0, gt=0)
    # Without Twilio credentials a local dialer plays the customer (answers, talks this
    # long, hangs up), so the demo shows a callback end to end.
    local_dialer_talk_seconds: float = Field(default=5.0, ge=0)
    # The Twilio REST API's base URL (a stand-in in tests or staging); empty: Twilio's.
    twilio_api_base_url: str | None = None

    # Follow-ups, promises and SMS (issue 17.2): satisfaction calls after closed incidents,
    # calls after a low survey score, promise warnings/escalation (followups.yaml, see
    # README "Follow-ups and promises"). No file: off.
    followups_file: Path = Path("followups.yaml")
    followup_every_s: float = Field(default=5.0, gt=0)  # how often `ivr worker` sweeps
    followup_lease_seconds: float = Field(default=90.0, gt=0)
    # The number follow-up calls and SMS are sent from (E.164); empty: IVR_CALLBACK_CALLER_ID.
    followup_caller_id: str = ""

    # Transfers (issue 16): the connected call on a conference (one per call), so the agent
    # can hold it and transfer it to a queue, a named agent or an outside number from the
    # list below (name -> E.164 number or sip: URI, as JSON in IVR_TRANSFER_NUMBERS). A
    # transfer written but never confirmed (the process died before Twilio was told) is
    # finished or rolled back by the sweep after transfer_pending_seconds.
    conference_calls: bool = True
    transfer_numbers: dict[str, str] = Field(default_factory=dict)
    transfer_pending_seconds: int = Field(default=30, ge=5)
    # Without an account SID the stand-in's called party (a transfer's second agent or
    # outside number, a supervisor's monitor) rings this long, then answers with Twilio's
    # signed status callbacks to this server. None: nobody answers (tests that post those
    # callbacks themselves).
    local_answer_seconds: float | None = Field(default=2.0, ge=0)

    # Request bodies (ivr.core.limits): refused with 413 over this, by Content-Length before
    # anything is read, or as soon as a streamed body passes it. Every route; Twilio's
    # webhooks take at most 64 kB whatever this says, and the CRM push (batches of up to
    # 10,000 records, about 3.4 MB for the demo's) has its own.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_push_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)

    # `ivr serve` (ivr.core.server): a request's headers must be complete this long after
    # the connection can send one (it opened, or the last answer ended) and within this
    # size; else 408 / 431 and the connection is closed (a client that stalls mid-header).
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_header_bytes: int = Field(default=64 * 1024, ge=4096)

    default_region: str = "IL"
    log_level: str = "INFO"

    # Observability. GET /metrics (Prometheus text) needs this bearer token; empty disables
    # it. Logs are plain text lines or JSON objects (time, level, logger, message, call_sid,
    # exception), one a line.
    metrics_token: SecretStr = SecretStr("")
    log_format: Literal["text", "json"] = "text"

    # The port `ivr serve` listens on and `ivr simulate` calls (their --port / --url win).
    port: int = Field(default=8000, ge=1, le=65535)
    # The centre's time zone: the times the command line prints (`ivr crm show`).
    timezone: str = "Asia/Jerusalem"
    # i18n (issue 17.5): the console's and the reports' language for an agent who has not
    # chosen one (`ivr agents add --language`, the console's switch); dates and times are
    # shown in that language in default_region (he-IL, en-IL) and the time zone above.
    interface_language: Literal["en", "he"] = "en"
    # The demo only (./run.sh writes it to .env): the centre is open at any hour — the
    # menus' hours nodes and the callback policies' business, offer and quiet hours — so a
    # demo on a Sunday at 05:17 reaches a queue and its callback offer. It takes effect only
    # in the demo's configuration (SQLite, no Twilio account SID); anywhere else it is
    # ignored with a warning at every start (see ``demo_always_open_ignored``).
    demo_always_open: bool = False

    # Retention (issue 17.4): the wrap-up's topics, outcomes and leaving reasons, the
    # retention queues and the leaving-risk weights (wrapup.yaml, see README "Retention");
    # a missing file: the built-in lists.
    wrapup_file: Path = Path("wrapup.yaml")

    # Reports (issue 17.5): the service level counts calls answered within this many
    # seconds of joining the queue; weeks start on this day (Israel's on Sunday); the worker
    # rolls up finished days this often (`ivr reports refresh` does it by hand).
    reports_service_level_seconds: int = Field(default=20, ge=1, le=3600)
    reports_week_start: Literal["monday", "sunday"] = "sunday"
    reports_rollup_every_s: float = Field(default=900, gt=0)

    @field_validator("twilio_shared_keys", mode="before")
    @classmethod
    def _parse_shared_keys(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return {}
            parsed = json.loads(value)
            if not isinstance(parsed, dict):
                raise ValueError('expected a JSON object {"key id": "secret"}')
            return parsed
        return value

    @field_validator("leaving_risk_queues", "trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        from ivr.core.proxies import networks  # noqa: PLC0415

        networks(value)  # a ValueError names the entry that is no address or network
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("admin_token", "crm_token", "metrics_token")
    @classmethod
    def _token_or_digest(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret.startswith("sha256:"):
            hexdigest = secret[len("sha256:"):]
            if len(hexdigest) != 64 or not set(hexdigest.lower()) <= set("0123456789abcdef"):
                raise ValueError("expected sha256: and the token's SHA-256 in 64 hex digits "
                                 "(printf %s TOKEN | sha256sum), or the token itself")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Jerusalem)") from None
        return value

    @property
    def pooled(self) -> bool:
        """IVR_DATABASE_URL is a transaction-pooling PgBouncer (a direct URL is set)."""
        return bool(self.database_direct_url) and not self.is_sqlite

    @property
    def direct_database_url(self) -> str:
        """The database itself: for LISTEN, session locks and migrations."""
        return self.database_direct_url or self.database_url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def demo_always_open_ignored(self) -> str | None:
        """Why IVR_DEMO_ALWAYS_OPEN is set but ignored (a production-like configuration:
        PostgreSQL, or a Twilio account that takes real calls), else None. Ignored rather
        than refused: a demo line left in a production .env must not stop the server, and
        ignoring it keeps the centre's real hours, which is all that matters there."""
        if not self.demo_always_open:
            return None
        reasons = ([] if self.is_sqlite else ["the database is not SQLite"]) + (
            ["a Twilio account SID is set"] if self.twilio_account_sid else [])
        return " and ".join(reasons) or None

    @property
    def open_at_any_hour(self) -> bool:
        """The demo's switch in effect: hours nodes and callback hours always open."""
        return self.demo_always_open and self.demo_always_open_ignored is None
