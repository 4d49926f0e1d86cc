"""Settings of the desk's API: logins (`auth:`) and the event stream (`desktop:`). Kept apart from the modules
that use them so that reading settings loads no web framework."""

from __future__ import annotations

from limits import parse as parse_limit
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class AuthSettings(BaseModel):
    """The `auth:` settings section (env: HOTLINE_AUTH__<KEY>)."""

    model_config = ConfigDict(extra="forbid")

    token_ttl_s: float = Field(12 * 3600, gt=0, description="How long a login token stays valid.")
    login_per_address: str = Field(
        "120/minute",
        description="Login attempts one client address may make (`limits` notation); then 429. A shift change "
        "behind one NAT or proxy logs in from one address: raise it there.",
    )
    login_failures_per_user: str = Field(
        "10/minute", description="Failed logins one user name may have before it is refused (429) for a while."
    )
    hash_workers: int = Field(2, ge=1, le=32, description="Threads that check passwords (argon2: CPU-bound).")
    max_pending_logins: int = Field(
        32, ge=1, description="Logins waiting for a password check at once; more are refused with 503."
    )

    @field_validator("login_per_address", "login_failures_per_user")
    @classmethod
    def _limit(cls, value: str) -> str:
        try:
            parse_limit(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit like '30/minute'") from exc
        return value


class DesktopSettings(BaseModel):
    """The `desktop:` settings section (defaults until the gateway settings carry one)."""

    model_config = ConfigDict(extra="forbid")

    retention_days: float = Field(7.0, gt=0, description="Keep desktop events and call rows this long.")
    timezone: str = Field("Asia/Shanghai", description="Where 'today' begins, for the wallboard's figures.")
    history_retention_days: float = Field(
        366.0, gt=0, description="Keep each call's record (the call history operators and admins search) this long."
    )
    partial_retention_s: float = Field(
        3600.0,
        gt=0,
        description="Keep transcript.partial events this long (finals supersede them; they are most "
        "of the volume). A client resuming from further back gets the stream without those partials.",
    )
    ping_interval_s: float = Field(20.0, gt=0, description="Send a {type: ping} to idle desktop WebSockets.")
    client_backlog: int = Field(
        2000, ge=10, description="Live messages queued per socket before it catches up from the database instead."
    )


class DispatchSettings(BaseModel):
    """The `dispatch:` section: where submitted tickets go (the dispatch system's webhook); unset: nowhere, and
    the admins export them (`GET /api/admin/tickets/export`)."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: str | None = Field(
        None, pattern=r"^https?://[^\s/]+(/\S*)?$", description="POST each submitted ticket here (JSON)."
    )
    secret: SecretStr | None = Field(
        None,
        description="Signs each POST: X-Hotline-Signature = sha256=HMAC(secret, timestamp + '.' + body); from the "
        "environment (HOTLINE_DISPATCH__SECRET).",
    )
    timeout_s: float = Field(10.0, gt=0, le=120, description="One delivery attempt's limit.")
    max_attempts: int = Field(
        20, ge=1, le=1000, description="Then the ticket goes to the dead letters (an admin retries it)."
    )
    retry_min_s: float = Field(2.0, gt=0, description="The first retry's wait; it doubles up to retry_max_s.")
    retry_max_s: float = Field(600.0, gt=0)
    poll_s: float = Field(1.0, gt=0, le=60, description="How often due deliveries are looked for.")
    concurrency: int = Field(4, ge=1, le=64, description="Deliveries in flight at once (per desk process).")
