"""The runtime side of pyagent: what starts, watches and talks to running nodes.

It lives beside the compiler pipeline (load, model, check, plan, render, emit), not inside its
stages, and the two meet only through the files the compiler writes (a stack's `local.json` and
each node's `node.json`, both versioned). No pipeline module imports from here
(tests/test_architecture.py checks it), so `pyagent compile` never loads gRPC, cryptography or
the native extension.

- `local`: the local target's supervisor: finds or builds the daemon, starts one process per
  node, reads a compiled local stack, and asks the nodes who leads.
- `nodeapi`: the node's gRPC client and command signing (generated stubs from native/proto).
- `kv`: the Python face of the KV_v2 paged KV cache (the Rust extension).
"""
