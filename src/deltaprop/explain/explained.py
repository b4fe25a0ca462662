"""The rendering methods shared by every recorded explanation (network and circuit traces)."""

from __future__ import annotations

from typing import Any

from deltaprop.explain.render import render, to_dict


class Explained:
    """Mixin: ``to_text``, ``to_markdown``, ``to_latex``, ``to_html``, ``to_json``, ``to_dict``,
    and ``_repr_html_`` so that Jupyter shows the worked example as HTML.

    The keyword options of every ``to_*`` method are those of :func:`~.render.render`:
    ``digits``, ``notation`` (``"textbook"`` or ``"matrix"``) and ``lang`` (``"en"``, ``"zh"``).
    """

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return render(self, "json", indent=indent)

    def to_text(self, width: int = 100, color: bool = False, **options: Any) -> str:
        return render(self, "text", width=width, color=color, **options)

    def to_markdown(self, **options: Any) -> str:
        return render(self, "markdown", **options)

    def to_latex(self, **options: Any) -> str:
        return render(self, "latex", **options)

    def to_html(self, **options: Any) -> str:
        return render(self, "html", **options)

    def _repr_html_(self) -> str:
        return render(self, "html", fragment=True)

    def __str__(self) -> str:
        return self.to_text()
