"""Retrieval-augmented generation (public): `Retriever`s (your own, a function, or the
in-memory `VectorIndex`), the documents they return, a feature's RAG options and
`register_retriever` for ``retriever = "<name>"`` in the config. Names load on first use.
Docs: docs/adapters.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portal._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "BaseRetriever": "portal.adapters.rag",
    "Document": "portal.adapters.rag",
    "FunctionRetriever": "portal.adapters.rag",
    "RagOptions": "portal.adapters.rag",
    "Retriever": "portal.adapters.rag",
    "VectorIndex": "portal.adapters.rag",
    "as_retriever": "portal.adapters.rag",
    "register_retriever": "portal.adapters.rag",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


if TYPE_CHECKING:  # explicit re-exports for type checkers and IDEs
    from portal.adapters.rag import BaseRetriever as BaseRetriever
    from portal.adapters.rag import Document as Document
    from portal.adapters.rag import FunctionRetriever as FunctionRetriever
    from portal.adapters.rag import RagOptions as RagOptions
    from portal.adapters.rag import Retriever as Retriever
    from portal.adapters.rag import VectorIndex as VectorIndex
    from portal.adapters.rag import as_retriever as as_retriever
    from portal.adapters.rag import register_retriever as register_retriever
