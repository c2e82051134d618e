"""pyagent: a declarative IaC compiler for agent swarms."""

__version__ = "0.1.0"
