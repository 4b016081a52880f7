"""Science workflows: one module per `cait` job (run an engine, compare, fit, analyse)."""
