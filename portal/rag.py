"""Retrieval-augmented generation (public): `Retriever`s (your own, a function, or the
in-memory `VectorIndex`), the documents they return, a feature's RAG options and
`register_retriever` for ``retriever = "<name>"`` in the config. Names load on first use.
Docs: docs/layers.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portal._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "BaseRetriever": "portal.layers.rag",
    "Document": "portal.layers.rag",
    "FunctionRetriever": "portal.layers.rag",
    "RagOptions": "portal.layers.rag",
    "Retriever": "portal.layers.rag",
    "VectorIndex": "portal.layers.rag",
    "as_retriever": "portal.layers.rag",
    "register_retriever": "portal.layers.rag",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


if TYPE_CHECKING:  # explicit re-exports for type checkers and IDEs
    from portal.layers.rag import BaseRetriever as BaseRetriever
    from portal.layers.rag import Document as Document
    from portal.layers.rag import FunctionRetriever as FunctionRetriever
    from portal.layers.rag import RagOptions as RagOptions
    from portal.layers.rag import Retriever as Retriever
    from portal.layers.rag import VectorIndex as VectorIndex
    from portal.layers.rag import as_retriever as as_retriever
    from portal.layers.rag import register_retriever as register_retriever
