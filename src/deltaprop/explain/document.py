"""A worked example as blocks: the document of a network or a circuit trace.

The trace records numbers; the builders decide what to say about them, once, in the notation
of ``backprop-notes.md`` (or its matrix form), in the language asked for. Each renderer of
:mod:`.render` then draws the same blocks as rich text, Markdown, LaTeX or HTML.
"""

from __future__ import annotations

from deltaprop.explain.blocks import Block
from deltaprop.explain.circuit_doc import circuit_document
from deltaprop.explain.network_doc import network_document
from deltaprop.explain.records import CircuitRecord, NetworkRecord
from deltaprop.explain.words import Options


def document(tr: NetworkRecord | CircuitRecord, opts: Options | None = None) -> list[Block]:
    """The blocks of any trace."""
    opts = opts or Options()
    if isinstance(tr, CircuitRecord):
        return circuit_document(tr, opts)
    return network_document(tr, opts)
