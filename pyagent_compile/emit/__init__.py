"""Stage 6: files on disk (write, --check, stale detection)."""

from pyagent_compile.emit.stack import MARKER, StackDiff, compare, write

__all__ = ["MARKER", "StackDiff", "compare", "write"]
