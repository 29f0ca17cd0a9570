"""Per-tenant routing policies: rules over intent, complexity and request metadata that
pick a chain of models and a strategy to order it."""
