"""Stage 6: files on disk (write, --check, stale detection)."""

from pyagent_compile.emit.stack import MARKER, StackDiff, atomic_write, compare, compare_orphan, orphan_stacks, write

__all__ = ["MARKER", "StackDiff", "atomic_write", "compare", "compare_orphan", "orphan_stacks", "write"]
