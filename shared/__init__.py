"""The app's shared modules, grouped by stage (docs/architecture.md)."""
