"""One module per ``python -m twinbridge`` sub-command (discovered by twinbridge.cli)."""
