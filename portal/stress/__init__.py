"""Stress tools: fault injection, synthetic load and game days, run from the same config."""
