"""Layers around the contract, not around a vendor: tools, retrieval (RAG) and safety.

Moving a feature from one vendor to another moves none of these. Import the module you
need (``portal.adapters.safety``, ``portal.adapters.tools``, ``portal.adapters.rag``);
this package imports nothing, so unused adapters cost nothing at import time.
"""
