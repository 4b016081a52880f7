"""Sub-commands of the `cait` CLI, one module each (each exposes ``register(subparsers)``)."""
