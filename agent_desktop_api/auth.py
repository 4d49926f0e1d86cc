"""Users, passwords and bearer tokens for the desktop and admin APIs.

Passwords are hashed with argon2id (argon2-cffi). Login returns an opaque random token; only its SHA-256 is
stored (the token carries 256 bits of randomness, so a slow hash adds nothing and would slow every request), with
an expiry.

Logins run on the service's own small executor (argon2 costs ~50 ms of CPU and 64 MiB each), never on the event
loop or the shared thread pool that every other route uses, and behind rate limits (`login_guard`): a flood of
wrong passwords waits for itself, not the operators' requests or the health probes.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from agent_desktop_api.login_guard import LoginGuard
from agent_desktop_api.settings import AuthSettings
from config.database import as_utc, create_tables, metadata

Role = Literal["operator", "supervisor", "admin"]
ROLES: tuple[Role, ...] = ("operator", "supervisor", "admin")
OVERSEERS: frozenset[str] = frozenset({"supervisor", "admin"})  # see and act on every call, not only their own
USER_NAME = r"^[A-Za-z0-9_.@-]{1,80}$"

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(80), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

auth_tokens = sa.Table(
    "auth_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)


class UserExists(ValueError):
    pass


class UnknownUser(LookupError):
    pass


class DatabaseUnavailable(RuntimeError):
    """The users' database cannot be read or written: the caller answers 503, never 500."""


class LoginBusy(RuntimeError):
    """Too many logins already wait for a password check."""


@contextmanager
def database_errors() -> Iterator[None]:
    """SQLAlchemy's errors, but a constraint's, as DatabaseUnavailable (an answer of 503 and a retry)."""
    try:
        yield
    except IntegrityError:
        raise
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise DatabaseUnavailable(f"database unavailable ({type(cause).__name__})") from exc


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: Role


@dataclass(frozen=True)
class IssuedToken:
    token: str
    user: User
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AuthService:
    def __init__(
        self,
        engine: Engine,
        *,
        token_ttl_s: float = 12 * 3600,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        settings: AuthSettings | None = None,
    ) -> None:
        self.settings = settings or AuthSettings(token_ttl_s=token_ttl_s)
        self.engine = engine
        self.token_ttl = timedelta(seconds=self.settings.token_ttl_s)
        self.hasher = hasher or PasswordHasher()
        self.clock = clock
        self.guard = LoginGuard(self.settings.login_per_address, self.settings.login_failures_per_user)
        self._hashing = ThreadPoolExecutor(self.settings.hash_workers, thread_name_prefix="auth-hash")
        self._pending = 0
        self._pending_lock = threading.Lock()
        # Verified against when the user does not exist, so that a wrong name costs as long as a wrong password.
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        create_tables(engine, users, auth_tokens)

    # ---- users ----

    def add_user(self, name: str, role: Role, password: str) -> User:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if not password:
            raise ValueError("empty password")
        values = {
            "name": name,
            "role": role,
            "password_hash": self.hasher.hash(password),
            "disabled": False,
            "created_at": self.clock(),
        }
        try:
            with self.engine.begin() as conn:
                key = conn.execute(sa.insert(users).values(**values)).inserted_primary_key
        except IntegrityError as exc:
            raise UserExists(f"user {name!r} already exists") from exc
        assert key is not None
        return User(int(key[0]), name, role)

    def set_password(self, name: str, password: str) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(users).where(users.c.name == name).values(password_hash=self.hasher.hash(password))
            )
            if done.rowcount == 0:
                raise UnknownUser(name)
            # A new password ends every session of the old one.
            conn.execute(
                sa.delete(auth_tokens).where(
                    auth_tokens.c.user_id == sa.select(users.c.id).where(users.c.name == name).scalar_subquery()
                )
            )

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(users.c.id, users.c.name, users.c.role).order_by(users.c.name))
            return [User(row.id, row.name, cast(Role, row.role)) for row in rows]

    # ---- sessions ----

    async def login_async(self, name: str, password: str) -> IssuedToken | None:
        """`login` on the password-checking executor; LoginBusy when `max_pending_logins` already wait."""
        with self._pending_lock:
            if self._pending >= self.settings.max_pending_logins:
                raise LoginBusy("too many logins in progress")
            self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._hashing, self.login, name, password)
        finally:
            with self._pending_lock:
                self._pending -= 1

    def close(self) -> None:
        self._hashing.shutdown(wait=False, cancel_futures=True)

    def login(self, name: str, password: str) -> IssuedToken | None:
        with database_errors():
            return self._login(name, password)

    def _login(self, name: str, password: str) -> IssuedToken | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.name == name)).mappings().first()
        stored = row["password_hash"] if row is not None else self._dummy_hash
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or row["disabled"]:
            return None
        user = User(row["id"], row["name"], cast(Role, row["role"]))
        now = self.clock()
        token = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            if self.hasher.check_needs_rehash(stored):  # parameters were raised since this hash was made
                conn.execute(
                    sa.update(users).where(users.c.id == user.id).values(password_hash=self.hasher.hash(password))
                )
            conn.execute(sa.delete(auth_tokens).where(auth_tokens.c.expires_at < now))  # tidy up as we go
            conn.execute(
                sa.insert(auth_tokens).values(
                    token_hash=token_hash(token), user_id=user.id, created_at=now, expires_at=now + self.token_ttl
                )
            )
        return IssuedToken(token, user, now + self.token_ttl)

    def authenticate(self, token: str) -> User | None:
        with database_errors():
            return self._authenticate(token)

    def _authenticate(self, token: str) -> User | None:
        query = (
            sa.select(users.c.id, users.c.name, users.c.role, users.c.disabled, auth_tokens.c.expires_at)
            .join(auth_tokens, auth_tokens.c.user_id == users.c.id)
            .where(auth_tokens.c.token_hash == token_hash(token))
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or row.disabled or as_utc(row.expires_at) <= self.clock():
            return None
        return User(row.id, row.name, cast(Role, row.role))

    def logout(self, token: str) -> None:
        with database_errors(), self.engine.begin() as conn:
            conn.execute(sa.delete(auth_tokens).where(auth_tokens.c.token_hash == token_hash(token)))

    def still_valid(self, token_hashes: Iterable[str]) -> set[str]:
        """Which of these token hashes still belong to an unexpired token of an enabled user (one query: the
        event stream checks its open sockets with it, so logout, a new password or disabling closes them)."""
        wanted = list(token_hashes)
        if not wanted:
            return set()
        query = (
            sa.select(auth_tokens.c.token_hash)
            .join(users, auth_tokens.c.user_id == users.c.id)
            .where(
                auth_tokens.c.token_hash.in_(wanted),
                users.c.disabled.is_(False),
                auth_tokens.c.expires_at > self.clock(),
            )
        )
        with database_errors(), self.engine.connect() as conn:
            return {str(row.token_hash) for row in conn.execute(query)}

    def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable (or enable again) a user; disabling ends their sessions and closes their sockets."""
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(users).where(users.c.name == name).values(disabled=disabled))
            if done.rowcount == 0:
                raise UnknownUser(name)
            if disabled:
                conn.execute(
                    sa.delete(auth_tokens).where(
                        auth_tokens.c.user_id == sa.select(users.c.id).where(users.c.name == name).scalar_subquery()
                    )
                )


# ---- FastAPI ----


def get_auth_service(request: Request) -> AuthService:
    service = getattr(request.app.state, "auth", None)
    if not isinstance(service, AuthService):
        raise RuntimeError("app.state.auth is not set: build the app with agent_desktop_api.app.create_app")
    return service


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    return token.strip()


def current_user(request: Request, auth: AuthService = Depends(get_auth_service)) -> User:  # noqa: B008
    """401 unless the request carries a valid, unexpired token."""
    user = auth.authenticate(_bearer(request))
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or expired token", headers={"WWW-Authenticate": "Bearer"}
        )
    return user


@functools.cache  # one dependency object per role set, so FastAPI resolves it once per request
def require_role(*roles: Role) -> Callable[..., User]:
    """Dependency: the authenticated user (401 otherwise) if they have one of `roles` (403 otherwise)."""

    def dependency(user: User = Depends(current_user)) -> User:  # noqa: B008
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs role {' or '.join(roles)}")
        return user

    return dependency


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=1024)


class LoginResponse(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    user: str
    role: Role


router = APIRouter(prefix="/api/auth", tags=["auth"])


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _too_many(retry_after: float, what: str) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"too many {what}: try again later",
        headers={"Retry-After": str(int(retry_after + 0.999))},
    )


@router.post(
    "/login",
    responses={
        401: {"description": "Wrong user name or password."},
        429: {"description": "Too many attempts from this address or for this user (Retry-After)."},
        503: {"description": "The database is down, or too many logins are in progress."},
    },
)
async def login(request: Request, body: LoginRequest, auth: AuthService = Depends(get_auth_service)) -> LoginResponse:  # noqa: B008
    wait = auth.guard.attempt(_client_address(request))
    if wait is not None:
        raise _too_many(wait, "login attempts from this address")
    wait = auth.guard.locked(body.username)
    if wait is not None:
        raise _too_many(wait, "failed logins for this user")
    try:
        issued = await auth.login_async(body.username, body.password)
    except LoginBusy:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "too many logins in progress", headers={"Retry-After": "1"}
        ) from None
    if issued is None:
        auth.guard.failed(body.username)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "wrong user name or password", headers={"WWW-Authenticate": "Bearer"}
        )
    return LoginResponse(token=issued.token, expires_at=issued.expires_at, user=issued.user.name, role=issued.user.role)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(
    request: Request,
    _user: User = Depends(current_user),  # noqa: B008
    auth: AuthService = Depends(get_auth_service),  # noqa: B008
) -> None:
    auth.logout(_bearer(request))


@router.get("/me")
def me(user: User = Depends(current_user)) -> dict[str, Any]:  # noqa: B008
    return {"id": user.id, "name": user.name, "role": user.role}
