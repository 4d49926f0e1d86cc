"""The runtime on small flows: prompt resolution per language, branches on an injected clock, transfers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from ivr_flows.catalog import StaticPromptCatalog
from ivr_flows.model import Flow
from ivr_flows.port import RouteOutcome
from ivr_flows.runtime import FlowRunner
from ivr_flows.validate import parse_flow
from tests.ivr_flows.support import FakePort, Sequences, catalog_of

LANGS = """
number: "1"
name: languages
default_language: zh
languages: [en, zh]
start: hello
steps:
  hello: {type: play, prompts: [hello], next: menu}
  menu:
    type: menu
    prompts: [menu]
    options: {"1": to_fr, "2": to_de}
    on_failure: bye
  to_fr: {type: set_language, language: fr, next: info}
  to_de: {type: set_language, language: de, next: info}
  info: {type: play, prompts: [info, extra, info@zh], next: q}
  q: {type: route, queue: q, skills: [zh]}
  bye: {type: hangup, prompts: [bye]}
"""


def flow_of(text: str) -> Flow:
    return parse_flow(text, "test.yaml")


async def test_language_switch_changes_prompt_resolution() -> None:
    # info: fr and zh; extra: en and zh. A French caller hears fr/info, then en/extra (fallback: en before zh).
    catalog = catalog_of(
        "hello",
        "menu",
        "bye",
        "info@fr",
        "info@zh",
        "extra@en",
        "extra@zh",
        "queue_position_intro",
        "expected_wait_intro",
        "num_2",
        "num_3",
    )
    port = FakePort(["1"])
    runner = FlowRunner(flow_of(LANGS), catalog, sequences=Sequences())
    await runner.run(port)
    assert port.played() == ["zh/hello", "zh/menu", "fr/info", "en/extra", "zh/info"]
    assert runner.language == "fr" and port.language == "fr"
    # Announcements exist in zh/en only: the French caller gets them in English, the fallback chain's first.
    position, callback = port.announcements[0]
    assert position == ["en/queue_position_intro", "en/num_2", "en/expected_wait_intro", "en/num_3"]
    assert callback == []  # no callback_recorded prompt in this catalog: skipped, not fatal


async def test_fallback_for_a_language_without_its_own_prompt() -> None:
    catalog = catalog_of("hello", "menu", "bye", "info@zh", "extra@zh")
    port = FakePort(["2"])
    await FlowRunner(flow_of(LANGS), catalog).run(port)
    assert port.played()[-3:] == ["zh/info", "zh/extra", "zh/info"]


async def test_prompt_missing_at_run_time_is_skipped() -> None:
    port = FakePort(["2"])
    runner = FlowRunner(flow_of(LANGS), StaticPromptCatalog(set()))
    await runner.run(port)
    assert port.played() == []
    assert port.requests[0].queue == "q"


async def test_media_uris_are_absolute_without_extension() -> None:
    port = FakePort(["2"])
    await FlowRunner(flow_of(LANGS), catalog_of("hello", "menu", "info", "extra")).run(port)
    first_play = next(event for event in port.events if event[0] == "play")
    assert first_play[1] == ["zh/hello"]
    runner = FlowRunner(flow_of(LANGS), catalog_of("hello"))
    assert runner.resolve(["hello"]) == ["sound:/prompts/zh/hello"]


MENU = """
number: "1"
name: menu
default_language: zh
languages: [zh]
start: m
steps:
  m:
    type: menu
    prompts: [menu]
    options: {"12": a, "3": b}
    max_digits: 2
    terminator: "#"
    retries: 1
    invalid_prompt: invalid
    on_failure: bye
  a: {type: hangup}
  b: {type: hangup}
  bye: {type: hangup, prompts: [bye]}
"""


async def test_multi_digit_menu_with_terminator() -> None:
    port = FakePort(["3#"])
    runner = await _run(MENU, port)
    assert runner.ivr_path == ("m:3", "b")
    port = FakePort(["12"])
    runner = await _run(MENU, port)
    assert runner.ivr_path == ("m:12", "a")


async def test_invalid_entry_flushes_the_rest_and_plays_notice() -> None:
    port = FakePort(["99x", None])
    runner = await _run(MENU, port)
    assert runner.ivr_path == ("m[99,timeout]", "bye")
    assert ("flush",) in port.events
    assert port.played() == ["zh/menu", "zh/invalid", "zh/menu", "zh/bye"]  # no timeout_prompt: just the menu


async def test_keys_during_the_invalid_notice_answer_the_retry() -> None:
    port = FakePort(["9"], press_during={"zh/invalid": "3"})
    runner = await _run(MENU, port)
    assert runner.ivr_path == ("m[9]:3", "b")
    assert port.played() == ["zh/menu", "zh/invalid"]  # the menu prompt is not replayed


async def _run(text: str, port: FakePort, **kwargs: object) -> FlowRunner:
    runner = FlowRunner(flow_of(text), catalog_of("menu", "invalid", "bye", "open", "closed"), **kwargs)  # type: ignore[arg-type]
    await runner.run(port)
    return runner


HOURS = """
number: "1"
name: hours
default_language: zh
languages: [zh]
timezone: Asia/Shanghai
holidays: [2026-10-01]
start: check
steps:
  check:
    type: branch
    rules:
      - holiday: true
        next: holiday
      - weekdays: [mon, tue, wed, thu, fri]
        hours: ["08:30-12:00", "13:00-18:00"]
        next: open
      - weekdays: [sat, sun]
        hours: ["22:00-06:00"]
        next: night
    default: closed
  open: {type: hangup, prompts: [open]}
  closed: {type: hangup, prompts: [closed]}
  night: {type: hangup, prompts: [closed]}
  holiday: {type: hangup, prompts: [closed]}
"""

BEIJING = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("when", "step"),
    [
        (datetime(2026, 11, 23, 8, 30, tzinfo=BEIJING), "open"),  # Monday, opening minute
        (datetime(2026, 11, 23, 12, 0, tzinfo=BEIJING), "closed"),  # end is exclusive: lunch
        (datetime(2026, 11, 23, 17, 59, tzinfo=BEIJING), "open"),
        (datetime(2026, 11, 23, 18, 0, tzinfo=BEIJING), "closed"),
        (datetime(2026, 11, 23, 1, 0, tzinfo=UTC), "open"),  # 09:00 in Beijing: the zone is the flow's
        (datetime(2026, 11, 28, 23, 0, tzinfo=BEIJING), "night"),  # Saturday night, range over midnight
        (datetime(2026, 11, 29, 5, 59, tzinfo=BEIJING), "night"),
        (datetime(2026, 11, 29, 6, 0, tzinfo=BEIJING), "closed"),
        (datetime(2026, 10, 1, 10, 0, tzinfo=BEIJING), "holiday"),  # a Thursday, but National Day
        (datetime(2026, 9, 30, 17, 0, tzinfo=UTC), "holiday"),  # 01:00 on Oct 1st in Beijing
        (datetime(2026, 11, 23, 10, 0), "open"),  # naive: read in the flow's zone
    ],
)
async def test_time_of_day_and_holiday_branch(when: datetime, step: str) -> None:
    port = FakePort()
    runner = await _run(HOURS, port, clock=lambda: when)
    assert runner.ivr_path == ("check", step)
    assert date(2026, 10, 1) in runner.flow.holidays


TRANSFER = """
number: "1"
name: transfer
default_language: zh
languages: [zh]
start: t
steps:
  t: {type: transfer, target: "010-12345678", on_failure: sorry}
  sorry: {type: hangup, prompts: [bye]}
"""


async def test_transfer_taken_ends_the_flow_without_hangup() -> None:
    port = FakePort(transfer_ok=True)
    runner = await _run(TRANSFER, port)
    assert port.kinds() == ["answer", "transfer"]
    assert runner.result is not None and runner.result.reason == "transferred"


async def test_transfer_refused_goes_to_on_failure() -> None:
    port = FakePort(transfer_ok=False)
    runner = await _run(TRANSFER, port)
    assert port.kinds() == ["answer", "transfer", "play", "hangup"]
    assert runner.ivr_path == ("t", "sorry")


async def test_route_follow_ups_default_to_hangup() -> None:
    port = FakePort(["2"], router=lambda request: RouteOutcome("no_operators"))
    runner = FlowRunner(flow_of(LANGS), catalog_of("hello", "menu"))
    result = await runner.run(port)
    assert result.reason == "no_operators" and port.kinds()[-1] == "hangup"


async def test_step_budget_guards_against_endless_repeats() -> None:
    port = FakePort(["9"] * 50)
    text = MENU.replace('{"12": a, "3": b}', '{"12": a, "3": b, "9": m}')
    runner = FlowRunner(flow_of(text), catalog_of("menu"), max_steps=10)
    result = await runner.run(port)
    assert result.reason == "step_limit" and port.kinds()[-1] == "hangup"
