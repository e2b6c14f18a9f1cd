"""Judge prompts are data: templates shipped as text files, hashed, rendered without templating the data.

A stage's prompt is two files in a prompt directory: `<stage>.system.txt` and `<stage>.user.txt`
(default directory: `annotation/prompts/`). Placeholders are `$name`; the values (model outputs,
benchmark inputs) are inserted once and never interpreted, so a `$x` or `{x}` inside them stays text.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from string import Template

DEFAULT_PROMPT_DIR = Path(__file__).resolve().parent.parent / "prompts"
# Inputs can be huge (whole documents); each inserted field is cut to this many characters.
MAX_FIELD_CHARS = 12_000


@dataclass(frozen=True)
class PromptTemplate:
    """One version of a stage's prompt: its text and the hash that identifies it."""

    stage: str
    name: str
    system: str
    user: str

    @property
    def text(self) -> str:
        """Both parts as one document (what a PromptVersion row stores)."""
        return f"### system\n{self.system}\n### user\n{self.user}"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.stage}\n{self.text}".encode()).hexdigest()

    def render(self, **values: object) -> list[dict[str, str]]:
        """Chat messages with the values inserted literally."""
        user = Template(self.user).safe_substitute({k: str(v) for k, v in values.items()})
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


def load_prompt(stage: str, directory: Path | str | None = None) -> PromptTemplate:
    """The prompt of `stage` from `directory` (the shipped defaults when None)."""
    folder = Path(directory) if directory else DEFAULT_PROMPT_DIR
    system_path, user_path = folder / f"{stage}.system.txt", folder / f"{stage}.user.txt"
    if not user_path.is_file():
        raise FileNotFoundError(f"no prompt for stage {stage!r}: {user_path} is missing")
    system = system_path.read_text(encoding="utf-8").strip() if system_path.is_file() else ""
    name = "default" if folder.resolve() == DEFAULT_PROMPT_DIR else folder.name
    return PromptTemplate(stage=stage, name=name, system=system, user=user_path.read_text(encoding="utf-8").strip())


def clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`text` cut to `limit` characters, saying so, so a prompt never explodes on one huge field."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters cut ...]"


def render_analysis_messages(
    template: PromptTemplate,
    *,
    input_text: str,
    output_text: str,
    reference: str,
    correct_outputs: tuple[str, ...] | list[str],
) -> list[dict[str, str]]:
    """The stage-1 messages for one failure (METHOD.md §2)."""
    if correct_outputs:
        shown = "\n".join(
            f"<<<CORRECT_ANSWER_{i}\n{clip(text, MAX_FIELD_CHARS // 2)}\nCORRECT_ANSWER_{i}>>>"
            for i, text in enumerate(correct_outputs, 1)
        )
    else:
        shown = "(none available)"
    return template.render(
        input_text=clip(input_text),
        output_text=clip(output_text),
        reference=clip(reference) if reference else "(no reference given)",
        n_correct=len(correct_outputs),
        correct_outputs=shown,
    )
