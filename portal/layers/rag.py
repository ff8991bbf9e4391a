"""Retrieval-augmented generation that travels between vendors.

A `Retriever` returns `Document`s for a query. Portal puts the best of them into the prompt
under a token budget, marks each with ``[doc:ID]``, asks the model to cite those markers,
and reports which documents the answer cited on `Response.citations`. Nothing here knows a
vendor: the same retriever and options serve a feature on any provider.

Retrievers:

- any object with ``retrieve(query, k)`` (and optionally ``async aretrieve(query, k)``;
  `BaseRetriever` runs ``retrieve`` in a worker thread by default);
- a plain function ``fn(query, k) -> list[Document | str | dict]``, sync or async
  (`FunctionRetriever`, applied automatically by `as_retriever`);
- `VectorIndex`: an in-memory cosine-similarity index over embeddings from
  ``client.embed`` (any vendor; the ``sim`` provider's are deterministic), for small
  corpora and tests.

The flow step (`rag_step`) is sans-IO: it yields a `Retrieve` effect that the sync client
performs with ``retrieve`` and the async client with ``aretrieve``.
"""

from __future__ import annotations

import heapq
import inspect
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from portal.contracts.messages import Message
from portal.effects import Retrieve
from portal.errors import ConfigError, ContractError

if TYPE_CHECKING:
    from portal.layers.safety import Decision, GuardChain

__all__ = [
    "DEFAULT_TEMPLATE",
    "BaseRetriever",
    "Document",
    "FunctionRetriever",
    "RagOptions",
    "Retriever",
    "VectorIndex",
    "as_retriever",
    "build_context",
    "cited_ids",
    "coerce_documents",
    "rag_step",
    "register_retriever",
]


# ----------------------------------------------------------------------------- documents


@dataclass(slots=True, frozen=True)
class Document:
    """One retrieved passage. ``id`` is what the model cites (``[doc:ID]``); ``score`` is
    the retriever's relevance (higher is better; cosine similarity for `VectorIndex`)."""

    id: str
    text: str
    source: str | None = None
    score: float = 0.0
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def with_score(self, score: float) -> Document:
        return Document(self.id, self.text, self.source, score, self.metadata)


_ID_OK = re.compile(r"^[^\s\[\]]+$")


def coerce_documents(items: Iterable[Any], where: str = "documents") -> list[Document]:
    """Accept `Document`s, plain strings (id = position) and dicts with ``text`` (and
    optionally ``id``, ``source``, ``score``, ``metadata``)."""
    if isinstance(items, (str, bytes, Mapping)):
        raise ContractError(f"{where}: expected a list of documents, got {type(items).__name__}")
    out: list[Document] = []
    for i, item in enumerate(items):
        if isinstance(item, Document):
            doc = item
        elif isinstance(item, str):
            doc = Document(str(i), item)
        elif isinstance(item, Mapping):
            text = item.get("text")
            if not isinstance(text, str):
                raise ContractError(f"{where}[{i}].text: required, a string")
            unknown = set(item) - {"id", "text", "source", "score", "metadata"}
            if unknown:
                raise ContractError(
                    f"{where}[{i}]: unknown key(s) {', '.join(sorted(map(repr, unknown)))}; "
                    "allowed: id, metadata, score, source, text"
                )
            doc = Document(
                str(item.get("id", i)),
                text,
                item.get("source"),
                float(item.get("score", 0.0)),
                dict(item.get("metadata") or {}),
            )
        else:
            raise ContractError(
                f"{where}[{i}]: expected a Document, a string or a dict with 'text', "
                f"got {type(item).__name__}"
            )
        if not _ID_OK.match(doc.id):
            raise ContractError(
                f"{where}[{i}].id: {doc.id!r} cannot be cited as [doc:ID]; "
                "use an id without spaces or square brackets"
            )
        out.append(doc)
    return out


# ----------------------------------------------------------------------------- retrievers


@runtime_checkable
class Retriever(Protocol):
    """Finds the ``k`` documents most relevant to ``query``, best first."""

    def retrieve(self, query: str, k: int) -> list[Document]: ...

    async def aretrieve(self, query: str, k: int) -> list[Document]: ...


class BaseRetriever:
    """Implement ``retrieve``; ``aretrieve`` then runs it in a worker thread so an async app's
    event loop never blocks on it. Override ``aretrieve`` when you have real async I/O."""

    def retrieve(self, query: str, k: int) -> list[Document]:
        raise NotImplementedError(f"{type(self).__name__} must implement retrieve(query, k)")

    async def aretrieve(self, query: str, k: int) -> list[Document]:
        return await anyio.to_thread.run_sync(self.retrieve, query, k)


class FunctionRetriever(BaseRetriever):
    """A plain function as a retriever: ``fn(query, k)``, sync or async, returning documents,
    strings or dicts (see `coerce_documents`)."""

    def __init__(self, fn: Callable[[str, int], Any]) -> None:
        if not callable(fn):
            raise ConfigError("FunctionRetriever: fn must be callable as fn(query, k)")
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)

    def __repr__(self) -> str:
        return f"FunctionRetriever({getattr(self.fn, '__name__', self.fn)!r})"

    def retrieve(self, query: str, k: int) -> list[Document]:
        if self.is_async:
            raise ConfigError(
                f"retriever {getattr(self.fn, '__name__', 'fn')!r} is async; "
                "use portal.AsyncClient, or pass a sync function"
            )
        return coerce_documents(self.fn(query, k), "retriever result")

    async def aretrieve(self, query: str, k: int) -> list[Document]:
        if self.is_async:
            result = await self.fn(query, k)
            return coerce_documents(result, "retriever result")
        return await anyio.to_thread.run_sync(self.retrieve, query, k)


_REGISTRY: dict[str, Retriever] = {}


def register_retriever(name: str, retriever: Any) -> None:
    """Make a retriever usable by name from config: ``rag = { retriever = "faq" }``."""
    if not isinstance(name, str) or not name:
        raise ConfigError("register_retriever: name must be a non-empty string")
    _REGISTRY[name] = as_retriever(retriever, f"register_retriever({name!r})")


def as_retriever(obj: Any, where: str = "retriever") -> Retriever:
    """A `Retriever` from a retriever, a registered name or a plain function."""
    if isinstance(obj, str):
        found = _REGISTRY.get(obj)
        if found is None:
            known = ", ".join(sorted(_REGISTRY)) or "none registered"
            raise ConfigError(
                f"{where}: no retriever named {obj!r} (known: {known}); "
                "call portal.layers.rag.register_retriever(name, retriever) first"
            )
        return found
    if hasattr(obj, "retrieve"):
        if not hasattr(obj, "aretrieve"):
            return _SyncOnly(obj)
        return obj  # type: ignore[no-any-return]
    if callable(obj):
        return FunctionRetriever(obj)
    raise ConfigError(
        f"{where}: expected an object with retrieve(query, k), a function fn(query, k) or a "
        f"registered retriever name, got {type(obj).__name__}"
    )


class _SyncOnly(BaseRetriever):
    """Gives an object that only has ``retrieve`` the default ``aretrieve``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def retrieve(self, query: str, k: int) -> list[Document]:
        return coerce_documents(self.inner.retrieve(query, k), "retriever result")


# ----------------------------------------------------------------------------- vector index

Vector = list[float]
Embedder = Any  # portal.Client | portal.AsyncClient | Callable[[list[str]], vectors]


def _unit(vec: Sequence[float]) -> Vector:
    norm = math.sqrt(sum(x * x for x in vec))
    return [x / norm for x in vec] if norm > 0 else [0.0 for _ in vec]


class VectorIndex(BaseRetriever):
    """An in-memory cosine-similarity index. Pure Python: fine up to some thousands of
    documents; use a vector database beyond that (wrap it in a `Retriever`).

    ``embedder`` is a `portal.Client`, a `portal.AsyncClient` (calls ``embed`` with
    ``feature``/``model``) or a function ``texts -> vectors`` (sync or async). Documents are
    embedded with ``input_type="document"``, queries with ``"query"``.
    """

    def __init__(
        self,
        embedder: Embedder = None,
        *,
        feature: str | None = None,
        model: str | None = None,
        batch_size: int = 64,
    ) -> None:
        if batch_size < 1:
            raise ConfigError("VectorIndex: batch_size must be >= 1")
        self.embedder = embedder
        self.feature = feature
        self.model = model
        self.batch_size = batch_size
        self._docs: list[Document] = []
        self._vectors: list[Vector] = []
        self._ids: set[str] = set()
        self._dims: int | None = None

    def __len__(self) -> int:
        return len(self._docs)

    def __repr__(self) -> str:
        return f"VectorIndex({len(self)} documents, dims={self._dims})"

    # -- building ------------------------------------------------------------------------
    @classmethod
    def build(cls, embedder: Embedder, documents: Iterable[Any], **kw: Any) -> VectorIndex:
        """Embed ``documents`` with a sync client or function and index them."""
        index = cls(embedder, **kw)
        index.add(documents)
        return index

    @classmethod
    async def abuild(cls, embedder: Embedder, documents: Iterable[Any], **kw: Any) -> VectorIndex:
        """`build` with an `AsyncClient` or an async function."""
        index = cls(embedder, **kw)
        await index.aadd(documents)
        return index

    def add(
        self, documents: Iterable[Any], vectors: Sequence[Sequence[float]] | None = None
    ) -> None:
        """Index documents; embeds them unless ``vectors`` (one per document) are given."""
        docs = self._check_new(documents)
        if vectors is None:
            vectors = []
            for i in range(0, len(docs), self.batch_size):
                batch = [d.text for d in docs[i : i + self.batch_size]]
                vectors.extend(self._embed_sync(batch, "document"))
        self._store(docs, vectors)

    async def aadd(self, documents: Iterable[Any]) -> None:
        docs = self._check_new(documents)
        vectors: list[Vector] = []
        for i in range(0, len(docs), self.batch_size):
            batch = [d.text for d in docs[i : i + self.batch_size]]
            vectors.extend(await self._embed_async(batch, "document"))
        self._store(docs, vectors)

    def _check_new(self, documents: Iterable[Any]) -> list[Document]:
        docs = coerce_documents(documents)
        seen = set(self._ids)
        for d in docs:
            if d.id in seen:
                raise ContractError(
                    f"VectorIndex: duplicate document id {d.id!r}; ids must be unique"
                )
            seen.add(d.id)
        return docs

    def _store(self, docs: list[Document], vectors: Sequence[Sequence[float]]) -> None:
        if len(vectors) != len(docs):
            raise ContractError(
                f"VectorIndex: got {len(vectors)} vector(s) for {len(docs)} document(s)"
            )
        for d, v in zip(docs, vectors, strict=True):
            self._check_dims(v)
            self._docs.append(d)
            self._vectors.append(_unit(v))
            self._ids.add(d.id)

    def _check_dims(self, vec: Sequence[float]) -> None:
        if self._dims is None:
            self._dims = len(vec)
        elif len(vec) != self._dims:
            raise ContractError(
                f"VectorIndex: vector has {len(vec)} dimensions, the index has {self._dims}; "
                "embed queries and documents with the same model"
            )

    # -- embedding ------------------------------------------------------------------------
    def _embed_kwargs(self, input_type: str) -> dict[str, Any]:
        kw: dict[str, Any] = {"input_type": input_type}
        if self.feature is not None:
            kw["feature"] = self.feature
        if self.model is not None:
            kw["model"] = self.model
        return kw

    def _embed_sync(self, texts: list[str], input_type: str) -> list[Vector]:
        e = self.embedder
        if e is None:
            raise ConfigError("VectorIndex: no embedder; pass a client or a function, or vectors=")
        method = getattr(e, "embed", None)
        if method is not None:
            if inspect.iscoroutinefunction(method):
                raise ConfigError(
                    "VectorIndex: this index embeds with an AsyncClient; use "
                    "`await index.aretrieve(...)` / `VectorIndex.abuild`, or pass a portal.Client"
                )
            return [list(v) for v in method(inputs=texts, **self._embed_kwargs(input_type)).vectors]
        if inspect.iscoroutinefunction(e):
            raise ConfigError("VectorIndex: the embedder is async; use aadd/aretrieve")
        return [list(v) for v in e(texts)]

    async def _embed_async(self, texts: list[str], input_type: str) -> list[Vector]:
        e = self.embedder
        method = getattr(e, "embed", None)
        if method is not None and inspect.iscoroutinefunction(method):
            resp = await method(inputs=texts, **self._embed_kwargs(input_type))
            return [list(v) for v in resp.vectors]
        if e is not None and method is None and inspect.iscoroutinefunction(e):
            result: Awaitable[Any] = e(texts)
            return [list(v) for v in await result]
        return await anyio.to_thread.run_sync(self._embed_sync, texts, input_type)

    # -- querying -------------------------------------------------------------------------
    def search(self, vector: Sequence[float], k: int) -> list[Document]:
        """The ``k`` nearest documents to ``vector`` by cosine similarity, best first."""
        if k < 1 or not self._docs:
            return []
        self._check_dims(vector)
        q = _unit(vector)
        scored = (
            (sum(a * b for a, b in zip(q, v, strict=True)), i) for i, v in enumerate(self._vectors)
        )
        # ties broken by insertion order, so results are deterministic
        best = heapq.nlargest(k, scored, key=lambda s: (s[0], -s[1]))
        return [self._docs[i].with_score(round(score, 6)) for score, i in best]

    def retrieve(self, query: str, k: int) -> list[Document]:
        if not self._docs:
            return []
        return self.search(self._embed_sync([query], "query")[0], k)

    async def aretrieve(self, query: str, k: int) -> list[Document]:
        if not self._docs:
            return []
        return self.search((await self._embed_async([query], "query"))[0], k)


# ----------------------------------------------------------------------------- options

DEFAULT_TEMPLATE = (
    "Answer with the help of the context passages below. Each passage starts with its "
    "marker, such as [doc:ID]. When you use a passage, cite it by writing its marker "
    "exactly, e.g. [doc:{example}]. If the passages do not contain the answer, say so.\n\n"
    "{context}"
)
_OPTION_KEYS = ("k", "max_context_tokens", "min_score", "template", "retriever")


@dataclass(slots=True, frozen=True)
class RagOptions:
    """How many documents to fetch (``k``), how many prompt tokens they may take
    (``max_context_tokens``), the lowest score kept, and the context template (must contain
    ``{context}``; ``{example}`` is replaced by the first document id)."""

    k: int = 4
    max_context_tokens: int = 1500
    min_score: float | None = None
    template: str = DEFAULT_TEMPLATE
    retriever: str | None = None  # a registered retriever name (config)

    @classmethod
    def parse(cls, value: Any, where: str = "rag") -> RagOptions:
        if value is None:
            return cls()
        if isinstance(value, RagOptions):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{where}: expected a table, e.g. {{ k = 4, max_context_tokens = 1500 }}"
            )
        unknown = sorted(set(value) - set(_OPTION_KEYS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown option(s) {', '.join(map(repr, unknown))}; "
                f"options: {', '.join(sorted(_OPTION_KEYS))}"
            )
        k = value.get("k", 4)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"{where}.k: {k!r} must be a positive integer")
        budget = value.get("max_context_tokens", 1500)
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise ConfigError(f"{where}.max_context_tokens: {budget!r} must be a positive integer")
        min_score = value.get("min_score")
        if min_score is not None and not isinstance(min_score, (int, float)):
            raise ConfigError(f"{where}.min_score: {min_score!r} must be a number")
        template = value.get("template", DEFAULT_TEMPLATE)
        if not isinstance(template, str) or "{context}" not in template:
            raise ConfigError(f"{where}.template: must be a string containing {{context}}")
        retriever = value.get("retriever")
        if retriever is not None and not isinstance(retriever, str):
            raise ConfigError(f"{where}.retriever: must be the name of a registered retriever")
        return cls(k, budget, None if min_score is None else float(min_score), template, retriever)

    def merged(self, override: Any, where: str = "rag") -> RagOptions:
        """These options with a per-call table's keys on top."""
        if override is None:
            return self
        if isinstance(override, RagOptions):
            return override
        if not isinstance(override, Mapping):
            raise ConfigError(f"{where}: expected a dict such as {{'k': 4}}")
        mine = {k: getattr(self, k) for k in _OPTION_KEYS}
        return RagOptions.parse({**mine, **override}, where)


# ----------------------------------------------------------------------------- context

_CITE = re.compile(r"\[doc:([^\s\[\]]+)\]")


def _block(doc: Document) -> str:
    head = f"[doc:{doc.id}]" + (f" (source: {doc.source})" if doc.source else "")
    return f"{head}\n{doc.text.strip()}"


@dataclass(slots=True)
class Context:
    """What `build_context` put into the prompt."""

    message: Message | None
    documents: list[Document]
    tokens: int
    over_budget: list[str]


def build_context(
    documents: Sequence[Document],
    options: RagOptions,
    count: Callable[[str], int],
) -> Context:
    """Best documents first, until the next one would pass ``max_context_tokens``; one
    system message in ``options.template`` marking each with ``[doc:ID]``."""
    docs = [d for d in documents if options.min_score is None or d.score >= options.min_score]
    if not docs:
        return Context(None, [], 0, [])
    frame = options.template.replace("{example}", docs[0].id).replace("{context}", "")
    used = count(frame)
    kept: list[Document] = []
    over: list[str] = []
    for d in docs:
        cost = count(_block(d) + "\n\n")
        if over or used + cost > options.max_context_tokens:
            over.append(d.id)  # stop at the first that does not fit: keep the ranking
            continue
        kept.append(d)
        used += cost
    if not kept:
        return Context(None, [], 0, over)
    body = "\n\n".join(_block(d) for d in kept)
    text = options.template.replace("{example}", kept[0].id).replace("{context}", body)
    return Context(Message("system", text), kept, count(text), over)


def cited_ids(text: str, documents: Sequence[Document]) -> list[str]:
    """Ids of the given documents the text cites with ``[doc:ID]``, in order of first
    citation; markers for documents portal did not provide are ignored."""
    known = {d.id for d in documents}
    out: list[str] = []
    for m in _CITE.finditer(text):
        doc_id = m.group(1)
        if doc_id in known and doc_id not in out:
            out.append(doc_id)
    return out


def _query_of(messages: Sequence[Message]) -> str:
    for m in reversed(messages):
        if m.role == "user" and m.text.strip():
            return m.text
    raise ContractError("rag: no user message with text to retrieve for")


def _insert(messages: list[Message], context: Message) -> list[Message]:
    """After the leading system messages: every vendor accepts a system turn there."""
    i = 0
    while i < len(messages) and messages[i].role == "system":
        i += 1
    return [*messages[:i], context, *messages[i:]]


@dataclass(slots=True)
class RagResult:
    """The outcome of the RAG step, for the response and the meter."""

    messages: list[Message]
    documents: list[Document]
    decisions: list[Decision]
    details: dict[str, Any]


def rag_step(
    retriever: Retriever,
    options: RagOptions,
    messages: list[Message],
    *,
    count: Callable[[str], int],
    chain: GuardChain | None = None,
    clock: Callable[[], float] = time.perf_counter,
    deadline: float | None = None,
) -> Any:
    """Sans-IO: retrieve for the last user message, screen the documents with the chain's
    document guards, inject them under the token budget. Returns a `RagResult`."""
    query = _query_of(messages)
    t0 = clock()
    found = yield Retrieve(retriever, query, options.k, deadline)  # a failure is thrown in
    latency_ms = (clock() - t0) * 1000.0
    docs = coerce_documents(found, "retriever result")[: options.k]
    decisions: list[Decision] = []
    screened_out: list[str] = []
    if chain is not None and len(chain) and docs:
        result = chain.check_documents([d.text for d in docs])  # raises on a block
        decisions.extend(result.decisions)
        assert result.documents is not None
        kept = []
        for d, text in zip(docs, result.documents, strict=True):
            if text is None:
                screened_out.append(d.id)
            else:
                same = text == d.text
                kept.append(d if same else Document(d.id, text, d.source, d.score, d.metadata))
        docs = kept
    ctx = build_context(docs, options, count)
    out = _insert(messages, ctx.message) if ctx.message is not None else list(messages)
    details: dict[str, Any] = {
        "latency_ms": round(latency_ms, 3),
        "retrieved": len(found) if isinstance(found, list) else len(docs),
        "doc_ids": [d.id for d in ctx.documents],
        "context_tokens": ctx.tokens,
    }
    if ctx.over_budget:
        details["over_budget"] = ctx.over_budget
    if screened_out:
        details["screened_out"] = screened_out
    return RagResult(out, ctx.documents, decisions, details)
