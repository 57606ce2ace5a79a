"""Test-only servers and doubles (not part of the runtime)."""
