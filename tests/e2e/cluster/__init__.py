"""A real single-node Kubernetes cluster for the end-to-end tests, started by the project's own scripts."""
