"""The rendering methods shared by every recorded explanation (network and circuit traces)."""

from __future__ import annotations

from typing import Any


class Explained:
    """Mixin: ``to_text``, ``to_markdown``, ``to_latex``, ``to_html``, ``to_json``, ``to_dict``,
    and ``_repr_html_`` so that Jupyter shows the worked example as HTML."""

    def to_dict(self) -> dict[str, Any]:
        from deltaprop.explain.render import to_dict

        return to_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        from deltaprop.explain.render import render

        return render(self, "json", indent=indent)

    def to_text(self, width: int = 100, color: bool = False, digits: int = 4) -> str:
        from deltaprop.explain.render import render

        return render(self, "text", width=width, color=color, digits=digits)

    def to_markdown(self, digits: int = 4) -> str:
        from deltaprop.explain.render import render

        return render(self, "markdown", digits=digits)

    def to_latex(self, digits: int = 4) -> str:
        from deltaprop.explain.render import render

        return render(self, "latex", digits=digits)

    def to_html(self, digits: int = 4) -> str:
        from deltaprop.explain.render import render

        return render(self, "html", digits=digits)

    def _repr_html_(self) -> str:
        from deltaprop.explain.render import render

        return render(self, "html", fragment=True)

    def __str__(self) -> str:
        return self.to_text()
