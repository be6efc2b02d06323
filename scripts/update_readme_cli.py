"""Rewrite the README's CLI reference from the parsers' --help (``make readme-cli``)."""

from __future__ import annotations

import re
from pathlib import Path

from esms_analytics.cli import reference_markdown

START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def main() -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text("utf-8")
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    replaced = pattern.sub(lambda _: f"{START}\n{reference_markdown()}{END}", text)
    readme.write_text(replaced, "utf-8")


if __name__ == "__main__":
    main()
