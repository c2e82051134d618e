"""One module per CLI command; `cli.py` registers each module's `register(subparsers)`."""
