"""Validation: every problem listed at once, each with the right file, line and step."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr_flows.errors import FlowError
from ivr_flows.validate import ValidationContext, ValidationReport, validate_file, validate_text
from tests.ivr_flows.support import FIXTURES, catalog_of

ALL_PROMPTS = catalog_of("welcome", "menu", "goodbye", "invalid", "callback_recorded")


def check(name: str, **context: object) -> ValidationReport:
    ctx = ValidationContext(**{"prompts": ALL_PROMPTS, **context})  # type: ignore[arg-type]
    return validate_file(FIXTURES / name, ctx)


def located(report: ValidationReport) -> list[tuple[int, str | None, str]]:
    return [(e.line, e.step, e.message) for e in report.errors]


def has(report: ValidationReport, line: int, step: str | None, fragment: str) -> bool:
    return any(e.line == line and e.step == step and fragment in e.message for e in report.errors)


def test_good_flow() -> None:
    report = check("good.yaml", operator_skills=[frozenset({"zh"})])
    assert report.ok and not report.warnings
    assert report.flow is not None and report.flow.start == "hello"


def test_error_format_names_file_line_step() -> None:
    error = FlowError("flows/x.yaml", 12, "menu", "unknown target step 'bye'")
    assert str(error) == "flows/x.yaml:12: menu: unknown target step 'bye'"
    warning = FlowError("x.yaml", 3, None, "careful", "warning")
    assert str(warning) == "x.yaml:3: (flow): warning: careful"


def test_unknown_step_type_and_unknown_fields() -> None:
    report = check("unknown_type_and_field.yaml")
    assert has(report, 6, None, "unknown field 'colour'")
    assert has(report, 9, "hello", "unknown step type 'playy'")
    assert has(report, 15, "menu", "unknown field 'timout_s'")
    assert len(report.errors) == 3  # the broken step's `next: menu` still counts: nothing reported unreachable
    assert report.flow is None


def test_unknown_target() -> None:
    report = check("unknown_target.yaml")
    assert located(report) == [
        (15, "menu", "unknown target step 'byee' (did you mean 'bye'?)"),
        (16, "menu", "unknown target step 'nowhere'"),
    ]


def test_unreachable_step() -> None:
    assert located(check("unreachable.yaml")) == [(11, "orphan", "unreachable step (no path from start 'hello')")]


def test_loops_without_exit() -> None:
    report = check("loops.yaml")
    assert len(report.errors) == 2
    # menu → on_failure → sorry → menu: a silent caller would go round for ever.
    assert has(report, 7, "menu", "loop without exit: menu → sorry → menu")
    # play → goto → play: nobody can leave it.
    assert has(report, 19, "hello", "loop without exit: hello → again → hello")


def test_cycles_through_menu_choices_are_fine() -> None:
    report = check("repeat_is_fine.yaml")
    assert report.ok, report.errors


def test_menu_digits() -> None:
    report = check("menu_digits.yaml")
    assert has(report, 13, "menu", "digit '1' used twice in menu (first at line 11)")
    assert has(report, 14, "menu", "bad digits 'a'")
    assert has(report, 15, "menu", "option '12' is longer than max_digits (1)")
    assert has(report, 20, "menu2", "menu without options")
    assert has(report, 28, "menu3", "option '1#' contains the terminator '#'")
    assert not any("123" in e.message for e in report.errors)


def test_missing_prompts_follow_the_callers_language() -> None:
    # `info` exists in en only: a caller switched to French tries fr then the chain (zh) and finds nothing.
    catalog = catalog_of("welcome@zh", "menu", "goodbye", "info@en")
    report = validate_file(FIXTURES / "missing_prompts.yaml", ValidationContext(prompts=catalog))
    assert located(report) == [
        (9, "hello", "missing prompt 'welcome@en': no en audio"),
        (16, "menu", "missing prompt 'oops' for caller language zh (tried zh)"),
        (24, "fr_info", "missing prompt 'info' for caller language fr (tried fr, zh)"),
    ]
    # `goodbye` at the end is reached in zh and in fr: present in zh, so fr falls back to it: no error.


def test_prompt_fallback_satisfies_validation() -> None:
    catalog = catalog_of("welcome", "menu", "goodbye", "oops", "info@zh")
    report = validate_file(FIXTURES / "missing_prompts.yaml", ValidationContext(prompts=catalog))
    assert report.ok, report.errors


def test_yaml_syntax_error_line() -> None:
    report = check("syntax_error.yaml")
    assert len(report.errors) == 1
    assert report.errors[0].line == 7 and "YAML syntax error" in report.errors[0].message


def test_bad_values_all_listed() -> None:
    report = check("bad_values.yaml")
    assert has(report, 3, None, "default_language: 'chinese' is not a language code")
    assert has(report, 4, None, "languages: List should have at least 1 item")
    assert has(report, 6, None, "holidays.1")
    assert has(report, 10, "hello", "prompts: List should have at least 1 item")
    assert has(report, 16, "q", "max_wait_s: Input should be greater than 0")
    assert has(report, 17, "1st", "bad step id")


def test_route_without_skilled_operators_is_a_warning() -> None:
    report = check("good.yaml", operator_skills=[frozenset({"en"})])
    assert report.ok
    (warning,) = report.warnings
    assert (warning.line, warning.step, warning.severity) == (26, "queue", "warning")
    assert "no operator has skills ['zh']" in warning.message


def test_queue_announcements_must_be_sayable() -> None:
    class Sequences:
        def sequence(self, name: str, lang: str, n: int) -> list[str]:
            if lang != "zh":
                raise KeyError(lang)
            return [f"{name}_intro", f"num_{min(n, 3)}"]

    parts = ["queue_position_intro", "expected_wait_intro", "num_0", "num_1", "num_2", "num_3"]
    catalog = catalog_of("welcome", "menu", "goodbye", "callback_recorded", *(f"{p}@zh" for p in parts))
    report = validate_file(FIXTURES / "good.yaml", ValidationContext(prompts=catalog, sequences=Sequences()))
    assert report.ok, report.errors
    catalog = catalog_of("welcome", "menu", "goodbye", "callback_recorded", *(f"{p}@zh" for p in parts[:-1]))
    report = validate_file(FIXTURES / "good.yaml", ValidationContext(prompts=catalog, sequences=Sequences()))
    assert [(e.line, e.step) for e in report.errors] == [(23, "queue"), (23, "queue"), (23, "queue"), (23, "queue")]
    assert has(report, 23, "queue", "queue announcement 'queue_position' cannot be said to a caller in en")
    assert has(report, 23, "queue", "queue announcement 'expected_wait' cannot be said to a caller in zh")
    assert all("no audio for num_3@zh" in e.message for e in report.errors)


def test_duplicate_keys_anywhere_are_refused() -> None:
    text = (FIXTURES / "good.yaml").read_text().replace("  bye:\n", "  bye:\n    type: hangup\n", 1)
    report = validate_text(text, "dup.yaml", ValidationContext())
    assert any("duplicate key 'type' in steps.bye" in e.message and e.step == "bye" for e in report.errors)


def test_yaml_11_surprises_are_text(tmp_path: Path) -> None:
    text = (FIXTURES / "good.yaml").read_text()
    text = text.replace('number: "9999"', "number: 010").replace('      "1": to_en', "      1: to_en")
    text = text.replace("language: en", "language: no")  # Norwegian, not False
    report = validate_text(text, "t.yaml", ValidationContext())
    assert report.ok, report.errors
    assert report.flow is not None
    assert report.flow.number == "010"
    assert "1" in report.flow.steps["menu"].options  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "must be a mapping"),
        ('number: "1"\nname: x\ndefault_language: zh\nlanguages: [zh]\nstart: a\n', "missing field 'steps'"),
        ("!0", "could not determine a constructor"),  # found by the desktop API fuzz test (were 500s)
        ("null", "must be a mapping"),
        ("---\n", "must be a mapping"),
        ("name: !!timestamp 2020-99-99\n", "month must be in 1..12"),
    ],
)
def test_degenerate_files(text: str, message: str) -> None:
    report = validate_text(text, "x.yaml")
    assert any(message in e.message for e in report.errors)


def test_branch_hours_are_checked() -> None:
    text = """
number: "1"
name: x
default_language: zh
languages: [zh]
start: b
steps:
  b:
    type: branch
    rules:
      - hours: ["25:00-26:00"]
        next: bye
    default: bye
  bye: {type: hangup}
"""
    report = validate_text(text, "x.yaml")
    assert any(e.line == 11 and e.step == "b" and "time range" in e.message for e in report.errors)


def test_a_transfer_target_is_never_a_dial_string() -> None:
    flow = """number: "1"
name: transfer
default_language: zh
languages: [zh]
start: t
steps:
  t: {type: transfer, target: "PJSIP/00441234567@callers", on_failure: bye}
  bye: {type: hangup, prompts: [goodbye]}
"""
    report = validate_text(flow, "t.yaml", ValidationContext(prompts=ALL_PROMPTS))
    assert [(e.line, e.step) for e in report.errors] == [(7, "t")]
    assert "target" in report.errors[0].message
    fine = validate_text(flow.replace("PJSIP/00441234567@callers", "external:police"), "t.yaml",
                         ValidationContext(prompts=ALL_PROMPTS))  # fmt: skip
    assert fine.ok, fine.errors
