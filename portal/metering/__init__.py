"""Metering: prices, the durable per-call ledger, budgets, SLAs, telemetry and reports
(token counting is `portal.tokens`, below every tier that needs it).

Nothing is imported here on purpose: ``import portal`` must stay fast, and tiktoken, the
price table and database drivers load only when a metering module is first used.
"""
