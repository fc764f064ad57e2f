"""Shared pytest configuration. Fixture plugins live in tests/support/ and are listed here."""

pytest_plugins: list[str] = ["tests.support.azurite"]
