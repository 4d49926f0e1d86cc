"""The shipped 12345 flow: validity against the declared prompts, and every menu path (fake call port)."""

from __future__ import annotations

import pytest

from ivr_flows.catalog import FolderPromptCatalog
from ivr_flows.port import RouteOutcome, RouteRequest
from ivr_flows.runtime import FlowRunner
from ivr_flows.settings import FlowsSettings
from ivr_flows.validate import ValidationContext, parse_flow, validate_file
from tests.ivr_flows.support import SHIPPED, DeclaredPrompts, FakePort

IN_HOUSE = {"2": "en", "3": "fr", "4": "de", "5": "ru", "6": "es", "7": "ar", "8": "ja", "9": "ko"}
GREETING = ["zh/welcome", "en/welcome"]
LANGUAGE_MENU = [
    "zh/language_menu",
    "en/language_menu",
    "fr/lang_fr",
    "de/lang_de",
    "ru/lang_ru",
    "es/lang_es",
    "ar/lang_ar",
    "ja/lang_ja",
    "ko/lang_ko",
]


@pytest.fixture(scope="module")
def prompts() -> DeclaredPrompts:
    return DeclaredPrompts()


@pytest.fixture(scope="module")
def flow():  # type: ignore[no-untyped-def]
    return parse_flow(SHIPPED.read_text(encoding="utf-8"), str(SHIPPED))


def test_shipped_flow_needs_only_declared_prompts(prompts: DeclaredPrompts) -> None:
    report = validate_file(SHIPPED, ValidationContext(prompts=prompts, sequences=prompts))
    assert report.ok, "\n".join(map(str, report.errors))


def test_shipped_flow_validates_against_built_prompt_files() -> None:
    settings = FlowsSettings()
    wanted = DeclaredPrompts()
    if not all((settings.prompts_dir / lang / f"{name}.wav").is_file() for name, lang in wanted.entries):
        pytest.skip("prompt audio not fully built (hotline-tools prompts build)")
    catalog = FolderPromptCatalog(settings.prompts_dir, settings.prompt_texts)
    report = validate_file(SHIPPED, ValidationContext(prompts=catalog, sequences=catalog))
    assert report.ok, "\n".join(map(str, report.errors))


def test_shipped_flow_warns_about_languages_nobody_speaks(prompts: DeclaredPrompts) -> None:
    operators = [frozenset({"zh", "en"}), frozenset({"zh"})]
    report = validate_file(SHIPPED, ValidationContext(prompts=prompts, operator_skills=operators))
    assert report.ok
    warned = {w.step for w in report.warnings}
    assert warned == {f"queue_{lang}" for lang in IN_HOUSE.values() if lang != "en"}


async def run(flow, prompts, port: FakePort) -> FlowRunner:  # type: ignore[no-untyped-def]
    runner = FlowRunner(flow, prompts, sequences=prompts)
    await runner.run(port)
    return runner


@pytest.mark.parametrize(("digit", "queue"), [("1", "citizens"), ("2", "enterprises")])
async def test_mandarin_service_menu(flow, prompts, digit: str, queue: str) -> None:  # type: ignore[no-untyped-def]
    port = FakePort(["1", digit])
    runner = await run(flow, prompts, port)
    assert port.requests == [
        RouteRequest(
            queue,
            ("zh",),
            "zh",
            None,
            ("welcome", "language_menu:1", "set_zh", f"service_menu:{digit}", f"queue_{queue}"),
        )
    ]
    assert port.played() == [*GREETING, *LANGUAGE_MENU, "zh/service_menu", "zh/please_hold"]
    assert port.language == "zh"
    assert port.kinds()[0] == "answer" and port.kinds()[-1] == "hangup"
    assert runner.result is not None and runner.result.reason == "connected"
    # The queue announcements resolve in Mandarin through the prompt texts' sequences (2 callers ahead, 3 min).
    position, callback = port.announcements[0]
    assert position == [
        "zh/queue_ahead_intro",
        "zh/num_2",
        "zh/queue_ahead_outro",
        "zh/wait_intro",
        "zh/num_3",
        "zh/wait_minutes",
    ]
    assert callback == ["zh/callback_recorded"]


async def test_service_menu_repeat(flow, prompts) -> None:  # type: ignore[no-untyped-def]
    port = FakePort(["1", "9", "1"])
    runner = await run(flow, prompts, port)
    assert port.played().count("zh/service_menu") == 2
    assert runner.ivr_path == (
        "welcome",
        "language_menu:1",
        "set_zh",
        "service_menu:9",
        "service_menu:1",
        "queue_citizens",
    )
    assert port.requests[0].queue == "citizens"


@pytest.mark.parametrize(("digit", "language"), sorted(IN_HOUSE.items()))
async def test_in_house_languages(flow, prompts, digit: str, language: str) -> None:  # type: ignore[no-untyped-def]
    port = FakePort([digit])
    runner = await run(flow, prompts, port)
    assert ("set_language", language) in port.events
    (request,) = port.requests
    assert (request.queue, request.skills, request.language, request.interpreter_language) == (
        language,
        (language,),
        language,
        None,
    )
    assert request.ivr_path == ("welcome", f"language_menu:{digit}", f"set_{language}", f"queue_{language}")
    assert port.played()[-1] == f"{language}/please_hold"  # the caller's own language
    position, callback = port.announcements[0]
    # Announcements exist in zh and en only: other languages fall back to English, as one sentence.
    expected = language if language in ("zh", "en") else "en"
    assert position and all(item.startswith(f"{expected}/") for item in position)
    assert callback == [f"{language}/callback_recorded"]
    assert runner.result is not None and runner.result.language == language


async def test_other_languages_get_mandarin_operator_and_interpreter(flow, prompts) -> None:  # type: ignore[no-untyped-def]
    port = FakePort(["0"])
    await run(flow, prompts, port)
    (request,) = port.requests
    assert (request.queue, request.skills, request.interpreter_language, request.language) == (
        "citizens",
        ("zh",),
        "other",
        "other",
    )
    assert port.played()[-1] == "zh/interpreter_connecting"
    assert port.language is None  # prompts stay in Mandarin: the caller chose no in-house language


async def test_in_house_language_without_operators_falls_back_to_interpreter(flow, prompts) -> None:  # type: ignore[no-untyped-def]
    def router(request: RouteRequest) -> RouteOutcome:
        if request.interpreter_language is None:
            return RouteOutcome("no_operators")
        return RouteOutcome("connected", "op1002", interpreter_joined=True)

    port = FakePort(["3"], router=router)
    runner = await run(flow, prompts, port)
    assert [(r.queue, r.interpreter_language) for r in port.requests] == [("fr", None), ("citizens", "fr")]
    # interpreter_connecting has no French audio: English is next in the fallback chain.
    assert port.played()[-2:] == ["fr/please_hold", "en/interpreter_connecting"]
    assert runner.result is not None and runner.result.reason == "connected"


@pytest.mark.parametrize(
    "keys",
    [
        [None, None, None],  # three timeouts
        ["#", "*", "#"],  # three invalid entries
        [None, "*", None],  # a mix
    ],
)
async def test_language_menu_failures_end_in_mandarin_queue(flow, prompts, keys) -> None:  # type: ignore[no-untyped-def]
    port = FakePort(keys)
    runner = await run(flow, prompts, port)
    (request,) = port.requests
    assert (request.queue, request.skills) == ("citizens", ("zh",))
    assert runner.path[1].step == "language_menu" and runner.path[1].digits is None
    assert runner.ivr_path[-1] == "queue_zh"
    assert "hangup" not in port.kinds()[:-1]  # no hang-up before the operator conversation ends
    notices = [p for p in port.played() if p in ("zh/invalid", "zh/no_input")]
    expected = ["zh/no_input" if not k else "zh/invalid" for k in keys[:2]]
    assert notices == expected  # a notice before each retry, none after the last failure


async def test_service_menu_failures_end_in_mandarin_queue(flow, prompts) -> None:  # type: ignore[no-untyped-def]
    port = FakePort(["1", "5", None, "0"])
    runner = await run(flow, prompts, port)
    assert port.requests[0].queue == "citizens"
    assert runner.ivr_path[-2:] == ("service_menu[5,timeout,0]", "queue_zh")


async def test_recovers_after_two_failures(flow, prompts) -> None:  # type: ignore[no-untyped-def]
    port = FakePort([None, "*", "2"])
    runner = await run(flow, prompts, port)
    assert runner.ivr_path[1] == "language_menu[timeout,*]:2"
    assert port.requests[0].queue == "en"


async def test_barge_in_during_greeting(flow, prompts) -> None:  # type: ignore[no-untyped-def]
    port = FakePort(press_during={"zh/welcome": "2"})
    await run(flow, prompts, port)
    # The English greeting and the whole language menu are skipped: the key typed ahead answers the menu.
    assert port.played() == ["zh/welcome", "en/please_hold"]
    assert port.requests[0].queue == "en"


async def test_barge_in_during_menu_prompt(flow, prompts) -> None:  # type: ignore[no-untyped-def]
    port = FakePort(press_during={"en/language_menu": "1", "zh/service_menu": "2"})
    await run(flow, prompts, port)
    assert "fr/lang_fr" not in port.played()
    assert port.requests[0].queue == "enterprises"


async def test_callback_recorded_then_goodbye(flow, prompts) -> None:  # type: ignore[no-untyped-def]
    port = FakePort(["4"], router=lambda request: RouteOutcome("callback_recorded", waited_s=120))
    runner = await run(flow, prompts, port)
    assert port.played()[-1] == "de/goodbye"
    assert port.kinds()[-1] == "hangup"
    assert runner.result is not None and runner.result.route is not None
    assert runner.result.route.status == "callback_recorded"


async def test_caller_hangup_while_queued_does_not_hang_up_again(flow, prompts) -> None:  # type: ignore[no-untyped-def]
    port = FakePort(["2"], router=lambda request: RouteOutcome("caller_hangup"))
    runner = await run(flow, prompts, port)
    assert "hangup" not in port.kinds()
    assert runner.result is not None and runner.result.reason == "caller_hangup"
