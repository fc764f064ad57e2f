"""Operator and developer tooling for twinbridge (replay, filters, host, simulate, bench, …).

Run as ``python -m twinbridge <command>``. Not deployed with the Function App (see .funcignore).
"""
