"""End-to-end suites that need more than the normal test run: run only when asked (PYAGENT_E2E=1)."""
