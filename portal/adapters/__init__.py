"""The former home of the layers around a call (safety, RAG, moderation), kept so imports
written against it keep working. Each of its modules warns once, with a DeprecationWarning,
and names the public namespace to import instead (`portal.safety`, `portal.rag`)."""
