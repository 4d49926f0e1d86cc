"""Hostile flow files: what an attacker would post to the admin API or hand an administrator."""

from __future__ import annotations

from ivr_flows.loader import MAX_FLOW_BYTES


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """ "Billion laughs": each level lists the previous one `width` times (9 levels: 9^9 values, ~500 bytes)."""
    lines = ["number: '9999'", f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def deep_nesting(depth: int = 900) -> str:
    return "steps: " + "[" * depth + "]" * depth + "\n"


def deep_mapping(depth: int = 900) -> str:
    return "steps: " + "{a: " * depth + "1" + "}" * depth + "\n"


def oversized() -> str:
    return "name: x\n" + "# filler\n" * (MAX_FLOW_BYTES // 9 + 10)


BOMBS = {
    "alias_bomb": alias_bomb(),
    "deep_nesting": deep_nesting(),
    "deep_mapping": deep_mapping(),
    "oversized": oversized(),
}
