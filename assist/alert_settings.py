"""The `alerts:` settings section: the words that flag a call on the supervisors' wallboard."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_WORDS = (
    "自杀", "轻生", "不想活", "跳楼", "割腕", "爆炸", "炸弹", "燃气泄漏", "煤气泄漏", "天然气泄漏", "着火", "起火",
    "火灾", "被困", "触电", "塌了", "坍塌", "砍人", "持刀", "绑架", "救命",
)  # fmt: skip


class AlertSettings(BaseModel):
    """The `alerts:` section."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    words: list[str] = Field(
        default_factory=lambda: list(DEFAULT_WORDS), max_length=500, description="Words that flag a call."
    )

    @field_validator("words")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        cleaned = [word.strip() for word in value if word.strip()]
        if any(len(word) > 20 for word in cleaned):
            raise ValueError("an alert word is at most 20 characters")
        return cleaned
