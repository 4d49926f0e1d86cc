"""A fake CallPort that records what the runtime asks of a call, and prompt catalogs for tests."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ivr_flows import prompt_texts
from ivr_flows.catalog import StaticPromptCatalog
from ivr_flows.port import GatherResult, QueueAnnouncer, RouteOutcome, RouteRequest

FLOWS_DIR = Path(__file__).resolve().parents[2] / "ivr_flows" / "flows"
SHIPPED = FLOWS_DIR / "12345.yaml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


class FakePort:
    """Scripted caller: `keys` gives what the caller types at each gather ("" or None: silence).

    `press_during` types digits while a prompt plays (key: "lang/name" of the prompt), which cuts an
    interruptible prompt short and stays buffered, as voice.session.CallSession does.
    """

    call_id = "call-1"
    caller_number = "13800000000"

    def __init__(
        self,
        keys: Iterable[str | None] = (),
        *,
        router: Callable[[RouteRequest], RouteOutcome] | None = None,
        transfer_ok: bool = True,
        press_during: dict[str, str] | None = None,
    ) -> None:
        self.script: deque[str | None] = deque(keys)
        self.buffer = ""
        self.router = router or (lambda request: RouteOutcome("connected", "op1001", waited_s=3.0))
        self.transfer_ok = transfer_ok
        self.press_during = dict(press_during or {})
        self.events: list[tuple[Any, ...]] = []
        self.requests: list[RouteRequest] = []
        self.announcements: list[tuple[list[str], list[str]]] = []
        self.language: str | None = None

    # ---- CallPort ----

    async def answer(self) -> None:
        self.events.append(("answer",))

    async def play(self, media: str | Sequence[str], *, interruptible: bool = False) -> bool:
        items = [media] if isinstance(media, str) else list(media)
        if interruptible and self.buffer:  # a key is already waiting: nothing plays (as in CallSession)
            self.events.append(("play", [], interruptible, True))
            return True
        heard = []
        for uri in items:
            heard.append(short(uri))
            typed = self.press_during.pop(short(uri), "")
            self.buffer += typed
            if interruptible and self.buffer:
                self.events.append(("play", heard, interruptible, True))
                return True
        self.events.append(("play", heard, interruptible, False))
        return False

    async def gather(
        self,
        max_digits: int,
        first_timeout: float,
        inter_digit_timeout: float,
        total_timeout: float,
        terminator: str = "",
    ) -> GatherResult:
        if not self.buffer and self.script:
            self.buffer += self.script.popleft() or ""
        digits = ""
        reason = "timeout"
        while self.buffer and len(digits) < max_digits:
            key, self.buffer = self.buffer[0], self.buffer[1:]
            if terminator and key == terminator:
                reason = "terminator"
                break
            digits += key
        if len(digits) == max_digits:
            reason = "max_digits"
        self.events.append(("gather", digits, reason))
        return GatherResult(digits, reason, 1.0 if digits else None)  # type: ignore[arg-type]

    def flush_digits(self) -> None:
        self.buffer = ""
        self.events.append(("flush",))

    def set_language(self, language: str) -> None:
        self.language = language
        self.events.append(("set_language", language))

    async def route(self, request: RouteRequest, announcer: QueueAnnouncer) -> RouteOutcome:
        self.requests.append(request)
        self.announcements.append(
            ([short(u) for u in announcer.position(3, 150)], [short(u) for u in announcer.callback_recorded()])
        )
        self.events.append(("route", request.queue, request.skills, request.interpreter_language))
        return self.router(request)

    async def transfer(self, target: str) -> bool:
        self.events.append(("transfer", target))
        return self.transfer_ok

    async def hangup(self) -> None:
        self.events.append(("hangup",))

    # ---- inspection ----

    def played(self) -> list[str]:
        """Every prompt heard, as lang/name."""
        return [name for event in self.events if event[0] == "play" for name in event[1]]

    def kinds(self) -> list[str]:
        return [event[0] for event in self.events]


def short(uri: str) -> str:
    """sound:/prompts/zh/welcome → zh/welcome."""
    parts = uri.removeprefix("sound:").split("/")
    return "/".join(parts[-2:])


class Sequences:
    """Two-language queue announcements for tests: `<name>_intro`, num_<n>."""

    def __init__(self, languages: Iterable[str] = ("zh", "en")) -> None:
        self.languages = set(languages)

    def sequence(self, name: str, lang: str, n: int) -> list[str]:
        if lang not in self.languages:
            raise KeyError(lang)
        return [f"{name}_intro", f"num_{n}"]


class DeclaredPrompts(StaticPromptCatalog):
    """Every prompt declared in ivr_flows/prompt_texts.yaml, as if built (the prompt engineer's contract), with
    the file's own sequences."""

    def __init__(self, drop: Iterable[tuple[str, str]] = ()) -> None:
        self.texts = prompt_texts.load_catalog()
        super().__init__({(item.name, item.lang) for item in self.texts.items()} - set(drop))

    def sequence(self, name: str, lang: str, n: int) -> list[str]:
        return self.texts.sequence(name, lang, n)


def catalog_of(*names: str, languages: Iterable[str] = ("zh", "en")) -> StaticPromptCatalog:
    """Each name in each language; `name@lang` entries add one pair."""
    entries = set()
    for name in names:
        if "@" in name:
            base, lang = name.split("@")
            entries.add((base, lang))
        else:
            entries.update((name, lang) for lang in languages)
    return StaticPromptCatalog(entries)
