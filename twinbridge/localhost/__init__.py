"""A small local Functions host: serves the functions registered on the real ``FunctionApp`` at Core Tools' URLs.

Thin by design: it adapts HTTP requests to the ``azure.functions`` types the worker would build and calls the
user functions; everything else is the app's own code. See docs/local-run.md for what it does and does not do.
"""
