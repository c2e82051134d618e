"""The files through which the compiler and the runtime meet, each declared once and versioned.

The compiler writes them (a pipeline stage builds the value, `emit` writes it); the runtime reads
them back with the same declaration, so the two sides cannot drift apart. Nothing here imports
the pipeline or the runtime.

- `local_stack`: `local.json` of a local stack (`pyagent.dev/local/v1alpha1`).
"""
