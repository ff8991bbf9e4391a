"""Routing: canary arm, ordered targets, retries, failover, breakers, overflow, hedging."""
