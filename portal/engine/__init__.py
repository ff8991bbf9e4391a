"""Internal: what sits between the public clients and the tiers below them.

A call reads top to bottom: `portal.client` (public method) → `prepare` (route, contract,
layers, budget decision: one step, no writes) → `portal.routing.flow` (the sans-IO flow) →
`sync_driver` or `async_driver` (performs the effects) → httpx2. `core.Engine` holds what
every call of one client shares. Nothing here is public API; docs/architecture.md draws it.
"""
