"""Layers around the contract, not around a vendor: tools, retrieval (RAG) and safety.

Moving a feature from one vendor to another moves none of these. Internal: users import
`portal.safety` and `portal.rag`; this package imports nothing, so unused layers cost
nothing at import time.
"""
