"""The `bus` section: where the event bus reaches other processes (none by default: one process, in memory)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

_SUBJECT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


class BusSettings(BaseModel):
    """`url` set: the bus spans processes over NATS (`hotline serve --role voice|assist|desk`); unset: in memory."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None, description="NATS server, e.g. nats://127.0.0.1:4222 (needed by every role but 'all')."
    )
    token: SecretStr | None = Field(
        None, description="The NATS server's authorization token (from the environment: HOTLINE_BUS__TOKEN)."
    )
    subject: str = Field("hotline", description="Subject prefix: two hotlines on one NATS server use two.")
    request_timeout_s: float = Field(3.0, gt=0, le=60, description="How long the desk waits for call control.")
    connect_timeout_s: float = Field(5.0, gt=0, le=120)
    replay_s: float = Field(
        0,
        ge=0,
        le=7 * 86400,
        description=(
            "How long the NATS server keeps every event in a JetStream stream (events.replay), so a desk API "
            "instance taking over the desk event log goes on from where the last one stopped; 0: core NATS only "
            "(one desk API instance). Needs a server with JetStream (`hotline cluster up` sets 3600)."
        ),
    )

    @field_validator("url")
    @classmethod
    def _nats_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(nats|tls)://[^/\s]+$", value):
            raise ValueError("must look like nats://HOST:PORT (or tls://HOST:PORT); put the token in bus.token")
        if value is not None and "@" in value:
            raise ValueError("credentials do not belong in the URL: set bus.token (HOTLINE_BUS__TOKEN)")
        return value

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if not _SUBJECT.match(value):
            raise ValueError("letters, digits, '-' and '_', in '.'-separated tokens")
        return value
