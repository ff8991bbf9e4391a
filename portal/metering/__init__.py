"""Metering: token counts, prices, and the durable per-call ledger.

Nothing is imported here on purpose: ``import portal`` must stay fast, and tiktoken, the
price table and database drivers load only when a metering module is first used.
"""
