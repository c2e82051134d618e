"""pyagent: a declarative infrastructure-as-code compiler for agent swarms.

The compiler is a one-way pipeline: load -> model -> check -> plan -> render -> emit.
Each stage lives in the sub-package of the same name.
"""

__version__ = "0.1.0"
