"""The `flows:` settings section (env: HOTLINE_FLOWS__<KEY>)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

PACKAGE_DIR = Path(__file__).resolve().parent


class FlowsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flows_dir: Path = Field(
        PACKAGE_DIR / "flows", description="Shipped flow files, published as version 1 into an empty database."
    )
    prompts_dir: Path = Field(PACKAGE_DIR / "prompts", description="Prompt audio: <prompts_dir>/<language>/<name>.wav.")
    prompt_texts: Path = Field(
        PACKAGE_DIR / "prompt_texts.yaml", description="Prompt texts; its `sequences` say the queue announcements."
    )
    poll_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often a running gateway looks for versions published elsewhere."
    )
    check_prompts: bool = Field(True, description="Refuse flows whose prompts have no audio file.")
