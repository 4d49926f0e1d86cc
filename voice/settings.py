"""Settings of the telephony side: the Asterisk it runs or attaches to, the SIP edge (entry number, callers,
trunks, operators' phones, the interpreter centre, transfer directory), ARI, the call script and routing.

The composition root mounts them as the sections ``asterisk``, ``telephony``, ``ari``, ``call``, ``routing`` and
``recording``.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

from pydantic import Field, SecretStr, field_validator, model_validator

from config.loading import Section as _Section


class AsteriskSettings(_Section):
    mode: Literal["embedded", "system", "external"] = Field(
        "embedded",
        description="embedded: the Asterisk that `hotline asterisk install` puts under `prefix`; "
        "system: an installed binary given by `binary`; "
        "external: attach to a running Asterisk's ARI at `ari_url`.",
    )
    prefix: Path = Field(Path("var/asterisk"), description="Install prefix of the embedded Asterisk.")
    cache_dir: Path = Field(Path("var/cache/asterisk-debs"), description="Downloaded .deb cache (re-install offline).")
    binary: Path | None = Field(None, description="Asterisk binary for mode=system.")
    modules_dir: Path | None = Field(None, description="Module folder for mode=system (default: the binary's).")
    data_dir: Path | None = Field(
        None,
        description="Data folder (sounds, documentation) for mode=system (default: guessed from the binary).",
    )
    runtime_dir: Path = Field(Path("var/run/asterisk"), description="Rendered configuration, logs, spool, sockets.")
    system_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,20}$",
        description="Prefixes every channel id (so every call id) of this Asterisk: set a different one on each "
        "node of a cluster, whose call ids share one database.",
    )
    ari_url: str | None = Field(None, description="ARI base URL for mode=external, e.g. http://127.0.0.1:8088/ari.")
    ari_username: str = "hotline"
    ari_password: SecretStr | None = Field(None, description="Generated per instance when unset (embedded/system).")
    http_port: int = Field(8088, ge=1, le=65535)
    sip_port: int = Field(5060, ge=1, le=65535)
    sip_bind_address: str = Field(
        "127.0.0.1",
        description="Address of the PJSIP UDP transport (0.0.0.0 to take calls from other hosts).",
    )
    sip_tls_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="SIP over TLS (TCP) for operators' phones, whose calls then use SRTP; unset: no TLS.",
    )
    sip_tls_bind_address: str | None = Field(
        None, description="Address of the TLS transport (default: sip_bind_address), e.g. the operators' LAN."
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate of the TLS transport; unset: a self-signed one in runtime_dir/tls."
    )
    tls_key_file: Path | None = Field(None, description="Its private key (PEM).")
    rtp_port_start: int = Field(10000, ge=1024, le=65000)
    rtp_ports_per_call: int = Field(8, ge=2, description="RTP ports a call needs (DESIGN §5: ≈8 with taps).")
    startup_timeout_s: float = Field(30.0, gt=0)
    sid_mirror: str = Field("http://deb.debian.org/debian", description="Debian mirror holding the sid suite.")

    @model_validator(mode="after")
    def _mode_needs(self) -> AsteriskSettings:
        if self.mode == "system" and self.binary is None:
            raise ValueError("mode 'system' needs asterisk.binary (path of the asterisk executable)")
        if self.mode == "external" and not self.ari_url:
            raise ValueError("mode 'external' needs asterisk.ari_url")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("asterisk.tls_cert_file and asterisk.tls_key_file go together")
        if self.mode == "external" and self.ari_password is None:
            raise ValueError("mode 'external' needs asterisk.ari_password (HOTLINE_ASTERISK__ARI_PASSWORD)")
        return self


class PhoneEndpoint(_Section):
    """A staff phone: it registers with its id and password (or sits at a fixed contact)."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,40}$", description="SIP user name of the phone (the person's desk login too)."
    )
    password: SecretStr | None = Field(None, description="Generated and stored in the runtime folder when unset.")
    contact: str | None = Field(
        None,
        pattern=r"^sips?:[A-Za-z0-9_.+-]*@?[A-Za-z0-9_.:\[\]-]{1,200}(;transport=(udp|tcp|tls))?$",
        description="A phone at a fixed address (sip:host:port) that does not register; unset: it registers.",
    )


class OperatorEndpoint(PhoneEndpoint):
    skills: list[str] = Field(default_factory=lambda: ["zh"], description="Language codes the operator speaks.")


class InterpreterCentre(_Section):
    """The external interpreter centre: a SIP trunk with one extension per language it interprets."""

    endpoint_id: str = Field("interpreters", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    password: SecretStr | None = Field(None, description="Generated and stored in the runtime folder when unset.")
    contact: str | None = Field(
        None, description="Static SIP URI of the centre (sip:host:port); unset: the centre registers."
    )
    extensions: dict[str, str] = Field(
        default_factory=lambda: {"other": "8000"},
        description="Language code -> extension at the centre; 'other' is used for languages not listed.",
    )
    ring_timeout_s: float = Field(20.0, gt=0)

    def extension_for(self, language: str) -> str | None:
        return self.extensions.get(language) or self.extensions.get("other")


DESTINATION_NAME = r"^[A-Za-z0-9_-]{1,40}$"


class ExternalDestination(_Section):
    """A place operators may transfer a caller to outside the operator pool (another hotline, a department's
    trunk). Only administrators write these: the desk names the entry, never the dial string."""

    endpoint: str = Field(
        pattern=r"^PJSIP/[A-Za-z0-9_.+*#-]{1,40}(@[A-Za-z0-9_.-]{1,40})?$",
        description="Asterisk dial target, PJSIP/<extension>@<endpoint> or PJSIP/<endpoint>.",
    )
    description: str = Field("", max_length=200, description="What the desk shows for this destination.")


class SipAccount(NamedTuple):
    id: str
    password: SecretStr | None
    contact: str | None


class RoutingSettings(_Section):
    wrap_up_s: float = Field(5.0, ge=0, description="After a call an operator gets this long before the next.")
    average_handle_s: float = Field(180.0, gt=0, description="Starting estimate of a call's length (waits).")
    moh_class: str = Field("default", description="Music on hold class callers hear while waiting.")
    transfer_ring_timeout_s: float = Field(20.0, gt=0)
    shared_operators: bool = Field(
        False,
        description="Several media nodes share the operators: each takes an operator's lease on the bus (a "
        "JetStream key-value bucket, voice.leases) before ringing them. Needs bus.url; `hotline cluster up` sets it.",
    )


class RecordingSettings(_Section):
    """The `recording` section: each conversation with an operator recorded (the bridge: every party)."""

    enabled: bool = Field(True, description="Record every call from the moment an operator answers.")
    dir: Path = Field(
        Path("var/recordings"),
        description="Where the recordings are kept (relative: to the project), one WAV per call, 0600 in 0700 "
        "folders. The desk serves them from here: give a desk process on another machine the same folder.",
    )
    retention_days: float = Field(180.0, gt=0, description="Recordings older than this are deleted.")


class TelephonySettings(_Section):
    entry_number: str = Field("12345", pattern=r"^[0-9*#+]{1,20}$")
    max_concurrent_calls: int = Field(100, ge=1, le=5000)
    caller_networks: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8"],
        description="Networks allowed to call the entry number without registration, identified by source "
        "address only; their P-Asserted-Identity is ignored (the demo accepts loopback).",
    )
    trusted_trunks: list[str] = Field(
        default_factory=list,
        description="A carrier's signalling addresses: they call in like caller_networks and their "
        "P-Asserted-Identity is taken as the caller number. Must not overlap caller_networks.",
    )
    operators: list[OperatorEndpoint] = Field(default_factory=list)
    supervisors: list[PhoneEndpoint] = Field(
        default_factory=list,
        description="Supervisors' phones: the gateway rings one to listen to, whisper into or barge into a call "
        "(the supervisor's desk login has the phone's id).",
    )
    interpreter_centre: InterpreterCentre = Field(default_factory=lambda: InterpreterCentre())
    external_destinations: dict[str, ExternalDestination] = Field(
        default_factory=dict,
        description="Directory of transfer destinations outside the pool: name -> endpoint (the desk sends "
        "`external:<name>`).",
    )

    def sip_accounts(self) -> list[SipAccount]:
        """Every endpoint with a SIP password: the operators' and supervisors' phones and the interpreter centre's
        trunk."""
        accounts = [SipAccount(op.id, op.password, op.contact) for op in [*self.operators, *self.supervisors]]
        centre = self.interpreter_centre
        accounts.append(SipAccount(centre.endpoint_id, centre.password, centre.contact))
        return accounts

    @model_validator(mode="after")
    def _unique_accounts(self) -> TelephonySettings:
        ids = [account.id for account in self.sip_accounts()]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"SIP endpoint ids used twice (operators, supervisors, the centre): {duplicates}")
        return self

    @field_validator("external_destinations")
    @classmethod
    def _destination_names(cls, value: dict[str, ExternalDestination]) -> dict[str, ExternalDestination]:
        bad = [name for name in value if not re.fullmatch(DESTINATION_NAME, name)]
        if bad:
            raise ValueError(f"destination names must be letters, digits, _ or - (1-40): {bad}")
        return value

    @model_validator(mode="after")
    def _trunks_apart(self) -> TelephonySettings:
        callers = [ipaddress.ip_network(n, strict=False) for n in self.caller_networks]
        for trunk in self.trusted_trunks:
            net = ipaddress.ip_network(trunk, strict=False)
            clash = [str(c) for c in callers if c.version == net.version and c.overlaps(net)]
            if clash:
                # Asterisk would pick one of the two endpoints for such an address: say which one it is.
                raise ValueError(f"trusted trunk {trunk} overlaps caller_networks {clash}")
        return self

    @field_validator("caller_networks", "trusted_trunks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"{net!r} is not a network (e.g. 127.0.0.0/8)") from exc
        return value


class AriSettings(_Section):
    app: str = Field("hotline", pattern=r"^[A-Za-z0-9_-]+$")
    request_timeout_s: float = Field(5.0, gt=0)
    reconnect_initial_s: float = Field(0.2, gt=0)
    reconnect_max_s: float = Field(5.0, gt=0)
    ping_interval_s: float = Field(5.0, gt=0)


class CallSettings(_Section):
    script: Literal["flow", "basic"] = Field(
        "flow",
        description="flow: the published IVR flow of the dialled number; basic: greet, ask for digits, read them back.",
    )
    greeting: str = Field("sound:hello-world", description="Media URI or prompt name played after answering.")
    prompts_dir: Path = Field(Path("var/prompts"), description="Folder of our own prompt files (prompt:NAME).")
    digits_prompt: str = Field("sound:vm-enter-num-to-call", description="Asks the caller for digits.")
    max_digits: int = Field(4, ge=1, le=32)
    first_digit_timeout_s: float = Field(8.0, gt=0)
    inter_digit_timeout_s: float = Field(3.0, gt=0)
    total_digit_timeout_s: float = Field(20.0, gt=0)
    terminator: str = Field("#", pattern=r"^[0-9*#]?$")


class AsteriskHost(Protocol):
    """The settings that rendering and running an Asterisk read (the composition root's settings satisfy it)."""

    @property
    def asterisk(self) -> AsteriskSettings: ...

    @property
    def telephony(self) -> TelephonySettings: ...

    @property
    def ari(self) -> AriSettings: ...

    def resolve(self, path: Path) -> Path: ...
