"""A "server" that reads its requests and never answers: initialize must time out."""

import sys

sys.stdin.read()
