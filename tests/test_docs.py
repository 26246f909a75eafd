"""The manual (issue 28 item 5): the README stays short with the two set-up commands first, and every relative link
in README.md and docs/*.md leads to a file that exists (pages moved from the README keep working)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_is_short_and_starts_with_the_two_setup_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 150, len(lines)
    assert lines[2:6] == [
        "```sh",
        "make run     # fresh machine -> .venv -> installs -> launches the app on the bundled default models",
        "make test    # fresh machine -> .venv -> the whole test suite, headless",
        "```",
    ]
    assert "\n## Models\n" in text and "<!-- MODELS:" in text  # the section the models' numbers go in
    for page in ("user_guide.md", "cli.md", "training.md", "models.md", "case_store.md", "engine_api.md"):
        assert f"(docs/{page})" in text, page


def test_every_relative_link_resolves():
    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            path = target.split("#", 1)[0]
            if path and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, broken
