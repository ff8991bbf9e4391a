"""Preparation: everything a call decides before its flow starts, as one step that writes
nothing. Route (canary arm, targets), contract (templates, tools, output), the call's safety
and RAG layers (input guards run here: a block refuses the call before any vendor is asked),
the budget decision, and the deadline. `flow_of` then composes the flow to drive."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from portal.contracts.cache import mark_auto
from portal.contracts.messages import Message, coerce_messages
from portal.contracts.output import OutputSpec
from portal.contracts.request import ChatArgs, ChatRequest, EmbedArgs, EmbedRequest
from portal.contracts.tools import ToolSpec, coerce_tools
from portal.errors import BudgetExceeded, ConfigError, ContractError, PolicyViolation
from portal.routing.call import Call
from portal.routing.flow import chat_flow, stream_flow, tool_loop_flow
from portal.routing.retry import RetryPolicy
from portal.routing.router import Route, Target

if TYPE_CHECKING:
    from portal.effects import Flow
    from portal.engine.core import Engine

__all__ = [
    "DEFAULT_MAX_STEPS",
    "SHADOW_TAG",
    "Prepared",
    "Refusal",
    "flow_of",
    "prepare_chat",
    "prepare_embed",
    "shadow_call",
]

DEFAULT_MAX_STEPS = 8
#: the tag of a shadow copy's ledger rows: the call id of the call it copied
SHADOW_TAG = "shadow_of"
DEFAULT_TOOL_TIMEOUT_S = 30.0
#: keyword arguments of chat/stream that become ChatRequest fields
_SAMPLING = frozenset({"max_tokens", "provider_options", "seed", "stop", "temperature", "top_p"})
#: the other keyword arguments (ChatArgs without the sampling ones)
_CALL_ARGS = frozenset(ChatArgs.__required_keys__ | ChatArgs.__optional_keys__) - _SAMPLING


@dataclass(slots=True)
class Prepared:
    """A chat or stream call ready to run: its `Call`, output spec, tools' functions, layers
    and tool-loop settings."""

    call: Call
    output: OutputSpec | None
    functions: dict[str, Any]
    layers: Any
    run_tools: bool | None
    max_steps: int
    tool_timeout_s: float | None
    #: the call's shadow copy to the canary target, if it gets one (its request is set
    #: when the flow starts: the request the primary is sent, after guards and RAG)
    shadow: Call | None = None


@dataclass(slots=True)
class Refusal:
    """An input guard or the budget refused the call before anything was sent: what its
    ledger row needs, and the error to raise."""

    error: PolicyViolation | BudgetExceeded
    operation: str
    route: Route
    key: str | None
    tenant: str | None
    tags: dict[str, str]
    contract_version: str | None


def prepare_chat(engine: Engine, operation: str, output: Any, args: ChatArgs) -> Prepared | Refusal:
    """``chat`` / ``stream`` arguments → a `Prepared` call, or the `Refusal` of a guard."""
    params: dict[str, Any] = {k: v for k, v in args.items() if k not in _CALL_ARGS}
    feature = args.get("feature")
    key = args.get("key")
    tenant = args.get("tenant")
    route = engine.router.route(feature, key, args.get("model"))
    contract = engine.contract(feature)
    msgs: list[Message] = []
    given_input = args.get("input")
    if given_input is not None:
        if contract is None:
            raise ContractError(
                "input= needs a feature with a contract (its prompt templates and input "
                "schema); pass messages= instead"
            )
        msgs.extend(contract.render(dict(given_input)))
    messages = args.get("messages")
    if messages is not None:
        msgs.extend(coerce_messages(messages))
    if not msgs:
        raise ContractError("pass messages= (a list of messages) or input= for a contract")
    feat = engine.config.features.get(feature) if feature else None
    call_tags = dict(args.get("tags") or (feat.tags if feat else {}))
    contract_version = getattr(contract, "version", None)
    layers = _layers(
        engine, feature, route, args.get("safety"), args.get("retriever"), args.get("rag")
    )
    specs = coerce_tools(args.get("tools"))
    # a renamed tool's calls come back under its original name (lenient normalization)
    functions = {s.original_name or s.name: s.function for s in specs if s.function is not None}
    if layers is not None:
        from portal.layers.pipeline import screen_input, wrap_tools

        try:
            msgs = screen_input(layers, msgs)  # a block refuses before any vendor call
        except PolicyViolation as exc:
            return Refusal(exc, operation, route, key, tenant, call_tags, contract_version)
        functions = wrap_tools(layers, functions)
    if contract is not None and contract.tools:
        specs = declared_tools(contract, specs)
    if feat is not None and feat.cache == "auto":
        msgs, specs = mark_auto(msgs, specs)
    out_spec = OutputSpec.of(output) if output is not None else None
    if out_spec is None and contract is not None:
        out_spec = contract.output_spec()
    if feat is not None:
        params.setdefault("max_tokens", feat.max_tokens)
        params.setdefault("temperature", feat.temperature)
    if not _SAMPLING.issuperset(params):
        unknown = sorted(set(params) - _SAMPLING)
        raise ContractError(
            f"{operation}: unknown argument(s) {', '.join(unknown)}; "
            f"sampling parameters are {', '.join(sorted(_SAMPLING))}"
        )
    request = ChatRequest(
        messages=msgs,
        tools=specs,
        tool_choice=args.get("tool_choice"),
        output=out_spec,
        stream=operation == "stream",
        **{k: v for k, v in params.items() if v is not None},
    )
    request.check_tool_choice()
    if output is not None or args.get("tools"):
        # what the call brings itself (the contract's were checked at load): leave out the
        # targets that cannot serve it now, not after earlier attempts
        given = "output=" if output is not None else "tools="
        route = servable(route, request, given, engine.servable_cache)
    call = Call(
        operation,
        route,
        request,
        key=key,
        tenant=tenant,
        tags=call_tags,
        contract_version=contract_version,
        deadline=_deadline(args.get("timeout_s"), route),
    )
    if layers is not None:
        layers.deadline = call.deadline
    run_tools = args.get("run_tools")
    max_steps = args.get("max_steps", DEFAULT_MAX_STEPS)
    if engine.budgets.active:
        looping = bool(functions) and run_tools is not False
        try:
            engine.budget(call, steps=max_steps if looping else 1)
        except BudgetExceeded as exc:
            return Refusal(exc, operation, call.route, key, tenant, call_tags, contract_version)
    return Prepared(
        call,
        out_spec,
        functions,
        layers,
        run_tools,
        max_steps,
        args.get("tool_timeout_s", DEFAULT_TOOL_TIMEOUT_S),
        None if call.route.shadow is None else shadow_call(call, call.route.shadow),
    )


def shadow_call(call: Call, target: Target) -> Call:
    """The shadow copy of ``call``: its own call (own id, arm ``shadow``) on ``target`` alone,
    one attempt, no failover. Its deadline is the call's, or ``target``'s ``timeout_s`` when
    the call has none. It carries no tenant and no budget hold: its spend is the feature's
    (the team running the canary pays for it, not the tenant), added when it finishes."""
    route = call.route
    deadline = call.deadline
    if deadline is None:
        deadline = time.perf_counter() + target.adapter.settings.timeout_s
    shadow_route = Route(
        route.feature,
        "shadow",
        [target],
        RetryPolicy(attempts=1),
        route.timeout_s,
        reasons=[f"shadow copy of call {call.call_id}"],
        pinned=1,
        canary_bucket=route.canary_bucket,
        canary_threshold=route.canary_threshold,
    )
    return Call(
        call.operation,
        shadow_route,
        call.request,
        key=call.key,
        tags={**call.tags, SHADOW_TAG: call.call_id},
        contract_version=call.contract_version,
        deadline=deadline,
        # part of the user action it copies: cost per action counts what the action cost,
        # and the copy does not count as an action of its own
        action_id=call.action_id or call.call_id,
    )


def prepare_embed(engine: Engine, args: EmbedArgs) -> Call | Refusal:
    """``embed`` arguments → its `Call`, or the budget's `Refusal`."""
    inputs = args["inputs"]
    if isinstance(inputs, str):
        inputs = [inputs]
    inputs = list(inputs)
    if not inputs or not all(isinstance(i, str) for i in inputs):
        raise ContractError("embed: inputs must be a non-empty list of strings")
    feature = args.get("feature")
    key = args.get("key")
    route = engine.router.route(feature, key, args.get("model"))
    request = EmbedRequest(inputs, args.get("dimensions"), args.get("input_type"))
    deadline = _deadline(args.get("timeout_s"), route)
    call = Call("embed", route, request, key=key, deadline=deadline)
    if engine.budgets.active:
        try:
            engine.budget(call)
        except BudgetExceeded as exc:
            return Refusal(exc, "embed", route, key, None, {}, None)
    return call


def _deadline(timeout_s: float | None, route: Route) -> float | None:
    if timeout_s is not None and not (
        isinstance(timeout_s, (int, float)) and 0 < timeout_s < math.inf
    ):
        raise ConfigError(
            f"timeout_s={timeout_s!r}: a call's deadline is a number of seconds above 0 "
            "(e.g. timeout_s=10); leave it out for the feature's timeout_s"
        )
    timeout = timeout_s if timeout_s is not None else route.timeout_s
    return None if timeout is None else time.perf_counter() + timeout


def _layers(
    engine: Engine, feature: str | None, route: Route, safety: Any, retriever: Any, rag: Any
) -> Any:
    """The call's safety and RAG layers, or None when it has neither."""
    feat = engine.config.features.get(feature) if feature else None
    feat_rag = getattr(feat, "rag", None)
    no_layers = safety is None and retriever is None and rag is None and feat_rag is None
    if no_layers and (feat is None or not feat.safety):  # the common call
        return None
    chain = engine.guard_chain(feature, safety)
    if chain is not None and not len(chain):
        chain = None
    wants_rag = rag is not False and (
        retriever is not None or rag is not None or feat_rag is not None
    )
    if chain is None and not wants_rag:
        return None
    from portal.layers.pipeline import Layers

    layers = Layers(chain=chain, record=lambda ds: engine.count_guards(feature, ds))
    if wants_rag:
        from portal.layers.rag import RagOptions, as_retriever
        from portal.tokens import count_tokens

        where = f'features."{feature}".rag' if feat_rag is not None else "rag="
        options = RagOptions.parse(feat_rag, where).merged(rag)
        if retriever is None and options.retriever is None:
            raise ConfigError(
                f"{where}: no retriever; pass retriever= to the call or set "
                'retriever = "<name>" (see portal.layers.rag.register_retriever)'
            )
        source = retriever if retriever is not None else options.retriever
        layers.retriever = as_retriever(source, "retriever=")
        layers.rag = options
        model = route.targets[0].model if route.targets else None
        layers.count = lambda text: count_tokens(text, model).tokens
    return layers


def flow_of(engine: Engine, p: Prepared) -> Flow[Any]:
    """The flow of a prepared ``chat`` or ``stream``: one routed call, or the tool loop
    (streamed for a stream) when its tools have functions; inside the call's safety and
    RAG layers if it has any. A budget hold is released however the flow ends."""
    flow = _flow_of(engine, p)
    hold = p.call.budget_hold
    if hold is None:
        return flow
    return _released(flow, lambda: engine.budgets.settle(None, None, 0.0, hold))


def _released(flow: Flow[Any], release: Callable[[], None]) -> Flow[Any]:
    """``flow``, then ``release`` however it ends (done, failed, or closed mid-stream)."""
    try:
        return (yield from flow)
    finally:
        release()


def _shadowed(
    engine: Engine, shadow: Call, request: ChatRequest, out: OutputSpec | None, flow: Flow[Any]
) -> Flow[Any]:
    """``flow``, launching its shadow copy when it starts (not when it is built: a stream
    nobody reads sends no copy)."""
    engine.shadow(shadow, request, out)
    return (yield from flow)


def _flow_of(engine: Engine, p: Prepared) -> Flow[Any]:
    first = p.call
    stream = first.operation == "stream"
    control, out = engine.control, p.output
    shadow = p.shadow
    if p.functions and p.run_tools is not False:

        def run(req: ChatRequest) -> Flow[Any]:
            # a shadow copies the first model turn only: the app's tools never run twice
            return tool_loop_flow(
                first,
                req,
                control,
                engine,
                out,
                p.functions,
                p.max_steps,
                p.tool_timeout_s,
                stream=stream,
            )

    elif p.layers is None and shadow is None:  # the common call: no closure, no pipeline
        once = stream_flow if stream else chat_flow
        return once(first, control, engine, out)
    else:
        once = stream_flow if stream else chat_flow

        def run(req: ChatRequest) -> Flow[Any]:
            first.request = req
            return once(first, control, engine, out)

    assert isinstance(first.request, ChatRequest)
    if p.layers is None:
        if shadow is not None:
            return _shadowed(engine, shadow, first.request, out, run(first.request))
        return run(first.request)
    from portal.layers.pipeline import chat_pipeline, stream_pipeline

    pipeline = stream_pipeline if stream else chat_pipeline
    if shadow is not None:
        inner = run

        def run(req: ChatRequest) -> Flow[Any]:  # the request as the model is sent it
            return _shadowed(engine, shadow, req, out, inner(req))

    return pipeline(p.layers, first.request, run, out)


#: verdicts `servable` keeps per client (oldest forgotten first)
SERVABLE_CACHE = 512


def servable(
    route: Route,
    request: ChatRequest,
    given: str,
    cache: dict[tuple[Any, ...], str | None] | None = None,
) -> Route:
    """``route`` without the targets whose vendor cannot serve ``request``'s output schema or
    tools (the adapter refuses to build a request with them; nothing is sent), each left out
    with why in ``skipped``; a shadow target that cannot serve them gets no copy. Raise
    `ContractError` naming the field when no target can. ``cache`` keeps each target's
    verdict per schema and tools, so a call that repeats them pays a dict lookup."""
    probe = ChatRequest(
        messages=[Message("user", "?")],
        tools=request.tools,
        tool_choice=request.tool_choice,
        output=request.output,
        stream=request.stream,
    )
    shape = _shape(probe) if cache is not None else None
    skipped: dict[str, str] = {}
    for target in route.targets:
        why = _verdict(target, probe, shape, cache)
        if why is not None:
            skipped[target.id] = why
    shadow = route.shadow
    if shadow is not None and shadow.id not in skipped and _verdict(shadow, probe, shape, cache):
        shadow = None
    if not skipped:
        return route if shadow is route.shadow else replace(route, shadow=shadow)
    kept = [t for t in route.targets if t.id not in skipped]
    where = f"feature {route.feature!r}" if route.feature else "model="
    if not kept:
        fields = sorted({_field_of(t, request, given) for t in route.targets})
        listed = "; ".join(f"{t}: {why}" for t, why in skipped.items())
        raise ContractError(
            f"{' and '.join(fields)}: no target of {where} can serve this call ({listed}); "
            f"change {' / '.join(fields)} as the message says, or route the call to a target "
            "that serves it",
            [{"target": t, "message": why} for t, why in skipped.items()],
        )
    pinned = sum(1 for t in route.targets[: route.pinned] if t.id not in skipped)
    return replace(
        route,
        targets=kept,
        pinned=pinned,
        shadow=shadow,
        skipped={**route.skipped, **skipped},
        reasons=[
            *route.reasons,
            *(f"skipped {t}: cannot serve this call: {why}" for t, why in skipped.items()),
        ],
    )


def _refusal(target: Target, request: ChatRequest) -> str | None:
    """Why ``target``'s adapter refuses to build ``request`` (no I/O), or None."""
    try:
        target.adapter.build_chat(request, target.model)
    except ContractError as exc:
        return str(exc)
    return None


def _shape(probe: ChatRequest) -> tuple[Any, ...]:
    """What a target's verdict on ``probe`` depends on: its output schema and tools."""
    import json

    def text(schema: Any) -> str:
        return json.dumps(schema, sort_keys=True, default=str)

    output = probe.output
    return (
        probe.stream,
        None if output is None else (output.name, text(output.schema)),
        tuple((t.name, t.strict, t.description, text(t.parameters)) for t in probe.tools),
        str(probe.tool_choice),
    )


def _verdict(
    target: Target,
    probe: ChatRequest,
    shape: tuple[Any, ...] | None,
    cache: dict[tuple[Any, ...], str | None] | None,
) -> str | None:
    if cache is None or shape is None:
        return _refusal(target, probe)
    key = (target.id, *shape)
    if key in cache:
        return cache[key]
    why = cache[key] = _refusal(target, probe)
    if len(cache) > SERVABLE_CACHE:
        try:
            cache.pop(next(iter(cache)), None)
        except (RuntimeError, StopIteration):  # another thread changed it meanwhile
            pass
    return why


def _field_of(target: Target, request: ChatRequest, given: str) -> str:
    """Which of the call's own fields ``target`` cannot serve: its output schema or its
    tools (``given`` when only one was passed)."""
    if request.output is None or not request.tools:
        return given
    without_tools = replace(request, messages=[Message("user", "?")], tools=[], tool_choice=None)
    return "output=" if _refusal(target, without_tools) is not None else "tools="


#: JSON Schema keywords that annotate without constraining: not compared between the
#: contract's declaration of a tool and the call's
_ANNOTATIONS = frozenset(
    {"title", "description", "examples", "default", "$comment", "additionalProperties"}
)


def declared_tools(contract: Any, specs: list[ToolSpec]) -> list[ToolSpec]:
    """The tools of a call of a feature whose contract declares ``[[tools]]``: the contract's
    declarations (name, description, schema, strict), each with the function the call passed
    for it. A tool the contract does not declare, or whose parameters differ from the
    declared ones, is refused with `ContractError`: the contract says what the feature may
    call, and the app cannot silently widen or change it."""
    declared = {t.name: t for t in contract.tools}
    functions: dict[str, Any] = {}
    for spec in specs:
        mine = declared.get(spec.name)
        if mine is None:
            names = ", ".join(sorted(declared))
            raise ContractError(
                f"tools=: tool {spec.name!r} is not declared by the contract of feature "
                f"{contract.name!r} ({contract.source}), which declares {names}; declare it "
                "under [[tools]] in the contract, or leave it out of tools=",
                [{"tool": spec.name, "keyword": "tools", "pointer": "/tools"}],
            )
        diff = _schema_diff(_constraints(mine.parameters), _constraints(spec.parameters), "")
        if diff is not None:
            i = contract.tools.index(mine)
            raise ContractError(
                f"tools=: tool {spec.name!r} differs from the contract of feature "
                f"{contract.name!r} ({contract.source}) at /tools/{i}/parameters{diff}; "
                "make the tool's parameters match the declared ones, or change the "
                "contract (a new version) first",
                [{"tool": spec.name, "keyword": "parameters", "pointer": diff or "/"}],
            )
        if spec.function is not None:
            functions[spec.name] = spec.function
    return [
        t if t.name not in functions else replace(t, function=functions[t.name])
        for t in contract.tools
    ]


def _constraints(schema: Any) -> Any:
    """``schema`` without its annotations (`_ANNOTATIONS`), ``required`` as a set."""
    if isinstance(schema, dict):
        out = {k: _constraints(v) for k, v in schema.items() if k not in _ANNOTATIONS}
        if isinstance(out.get("required"), list):
            out["required"] = sorted(map(str, out["required"]))
        if isinstance(schema.get("properties"), dict):  # property names are not keywords
            out["properties"] = {k: _constraints(v) for k, v in schema["properties"].items()}
        return out
    if isinstance(schema, list):
        return [_constraints(v) for v in schema]
    return schema


def _schema_diff(a: Any, b: Any, at: str) -> str | None:
    """The JSON pointer of the first place ``a`` and ``b`` differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{at}/{key}"
            found = _schema_diff(a[key], b[key], f"{at}/{key}")
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _schema_diff(x, y, f"{at}/{i}")
            if found is not None:
                return found
        return None
    return None if a == b else at
