"""Validate → publish → roll back: the one path by which a flow version becomes active (CLI and admin API).

Nothing reaches the store without passing validation against the current prompts and operators, so a bad flow
never replaces the running one. Rollbacks are validated again: a prompt deleted since then would otherwise come
back as a silent gap.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from ivr_flows.errors import FlowError, FlowInvalid
from ivr_flows.store import FlowStore, FlowVersion, content_hash
from ivr_flows.validate import ValidationContext, ValidationReport, validate_text

log = structlog.get_logger(__name__)

SYSTEM_AUTHOR = "system"


class FlowNotFound(LookupError):
    pass


class RollbackRefused(ValueError):
    pass


@dataclass(frozen=True)
class PublishResult:
    version: FlowVersion
    created: bool  # False: the content equals the active version, nothing was added
    warnings: list[FlowError] = field(default_factory=list)


class FlowService:
    def __init__(
        self,
        store: FlowStore,
        context: Callable[[], ValidationContext],
        *,
        on_change: Callable[[], object] | None = None,
    ) -> None:
        self.store = store
        self._context = context  # built per call: prompts and operators may have changed since the last one
        self._listeners: list[Callable[[], object]] = [on_change] if on_change is not None else []

    def add_listener(self, listener: Callable[[], object]) -> None:
        """Called after every change in this process (the registry refreshes at once instead of at its poll)."""
        self._listeners.append(listener)

    def context(self) -> ValidationContext:
        return self._context()

    def validate(self, text: str, file: str) -> ValidationReport:
        return validate_text(text, file, self._context())

    def publish(self, text: str, file: str, *, author: str, comment: str = "") -> PublishResult:
        report = self.validate(text, file)
        if not report.ok or report.flow is None:
            raise FlowInvalid(report.errors + report.warnings)
        number = report.flow.number
        active = self.store.active(number)
        if active is not None and active.content_hash == content_hash(text):
            return PublishResult(active, False, report.warnings)
        version = self.store.add(number, text, author=author, comment=comment, source=Path(file).name)
        log.info("flows.published", number=number, version=version.version, author=author)
        self._changed()
        return PublishResult(version, True, report.warnings)

    def rollback(self, number: str, *, to: int | None = None, author: str, comment: str = "") -> PublishResult:
        """Re-activate an earlier version (default: the one before the active) as a new version."""
        active = self.store.active(number)
        if active is None:
            raise FlowNotFound(f"no flow published for {number}")
        target_version = active.version - 1 if to is None else to
        if target_version < 1:
            raise RollbackRefused(f"{number} has no version before {active.version}")
        target = self.store.get(number, target_version)
        if target is None:
            raise FlowNotFound(f"{number} has no version {target_version}")
        if target.version == active.version or target.content_hash == active.content_hash:
            raise RollbackRefused(f"version {target.version} of {number} is already what runs (v{active.version})")
        report = self.validate(target.content, f"{number}@v{target.version}")
        if not report.ok:
            raise FlowInvalid(report.errors + report.warnings)
        note = f"rollback to v{target.version}" + (f": {comment}" if comment else "")
        version = self.store.add(
            number, target.content, author=author, comment=note, source=target.source, restored_from=target.version
        )
        log.info("flows.rolled_back", number=number, version=version.version, to=target.version, author=author)
        self._changed()
        return PublishResult(version, True, report.warnings)

    def diff(self, number: str, text: str, file: str) -> str:
        """Unified diff from the active version to `text` ("" when equal)."""
        active = self.store.active(number)
        old = active.content if active is not None else ""
        label = f"{number}@v{active.version} (active)" if active is not None else f"{number} (none active)"
        lines = difflib.unified_diff(
            old.splitlines(keepends=True), text.splitlines(keepends=True), fromfile=label, tofile=file
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    def bootstrap(self, flows_dir: Path) -> list[ValidationReport]:
        """First start (empty database): publish the shipped flows as version 1, author "system".

        A shipped flow that does not validate (e.g. its prompts are not built yet) is skipped and reported; the
        others are still published.
        """
        if not self.store.is_empty():
            return []
        reports = []
        for path in sorted(flows_dir.glob("*.yaml")):
            text = path.read_text(encoding="utf-8")
            try:
                self.publish(text, str(path), author=SYSTEM_AUTHOR, comment=f"shipped flow {path.name}")
                reports.append(self.validate(text, str(path)))
            except FlowInvalid as exc:
                log.error("flows.shipped_flow_invalid", file=str(path), errors=[str(e) for e in exc.errors])
                reports.append(ValidationReport(str(path), None, [e for e in exc.errors if e.severity == "error"]))
        return reports

    def _changed(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a listener's failure must not undo a publish that is already committed
                log.exception("flows.listener_failed")
