"""Stage 6: files on disk (write, --check, stale detection)."""

from pyagent_compile.emit.stack import MARKER, StackDiff, compare, compare_orphan, orphan_stacks, write

__all__ = ["MARKER", "StackDiff", "compare", "compare_orphan", "orphan_stacks", "write"]
