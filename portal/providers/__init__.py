"""Provider adapters: one module per wire API, each a pure translator (see `base.Adapter`)."""
