"""Asking the outside world what a spec refers to: the tool servers' tools (`pyagent tools lock`).

Not a compile stage: compiles stay offline and pure. The answers are written to a lock file
beside the spec, which the load stage reads (load/tools_lock.py).
"""
