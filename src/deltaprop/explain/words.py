"""The words of a worked example (headings, table headers and the rules), in English or Chinese,
and the options a document is written with. The phrases themselves stand in ``words.toml``.

>>> Words("zh")("backward")
'反向传播'
>>> Words("en")("step", k=2)
'Step 2'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LANGS = ("en", "zh")
NOTATIONS = ("textbook", "matrix")


@dataclass(frozen=True)
class Options:
    """How a document is written: significant digits, notation and language."""

    digits: int = 4
    notation: str = "textbook"  # textbook: net_j, o_j, w_ij, delta_j; matrix: I = XW + b, ...
    lang: str = "en"

    def __post_init__(self) -> None:
        if self.notation not in NOTATIONS:
            raise ValueError(
                f"notation must be one of {', '.join(NOTATIONS)}, got {self.notation!r}"
            )
        if self.lang not in LANGS:
            raise ValueError(f"lang must be one of {', '.join(LANGS)}, got {self.lang!r}")
        if not 1 <= self.digits <= 17:
            raise ValueError(f"digits must lie in 1..17, got {self.digits}")


def _phrase_book() -> dict[str, dict[str, str]]:
    """``words.toml`` beside this module: each phrase's text in every language of ``LANGS``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    book = tomllib.loads(Path(__file__).with_name("words.toml").read_text(encoding="utf-8"))
    for key, texts in book.items():
        if sorted(texts) != sorted(LANGS):
            raise RuntimeError(
                f"words.toml: phrase {key!r} has the languages {', '.join(sorted(texts))}; "
                f"expected {', '.join(LANGS)}"
            )
    return book


_WORDS = _phrase_book()


class Words:
    """``Words(lang)(key, **values)``: the phrase ``key`` in ``lang``, with the values filled in."""

    def __init__(self, lang: str = "en") -> None:
        if lang not in LANGS:
            raise ValueError(f"lang must be one of {', '.join(LANGS)}, got {lang!r}")
        self.lang = lang

    def __call__(self, key: str, **values: object) -> str:
        return _WORDS[key][self.lang].format(**values)
