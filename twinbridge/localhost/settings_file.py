"""local.settings.json, read the way Core Tools reads it.

``Values`` become environment variables before the app is imported; a variable already set in the environment
wins (Core Tools prints "Skipping '<name>' from local settings as it's already defined in current environment
variables." and does the same). ``AzureWebJobs.<Name>.Disabled`` disables a function.

Function keys are not part of Core Tools' file (``func start`` does not check keys unless ``--enableAuth``). This
host checks them only when the file configures some, in a top-level ``Keys`` object (Core Tools ignores it):
``{"Keys": {"default": "...", "<FunctionName>": "...", "master": "...", "eventgrid_extension": "..."}}``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("twinbridge.host")

_TRUE = {"true", "1", "yes"}


class SettingsFileError(SystemExit):
    """The file cannot be used. A SystemExit, so ``host`` stops with the message as before; the explorer, which
    reads the same file while serving, catches it by this name."""


@dataclass(frozen=True)
class LocalSettings:
    values: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    port: int | None = None
    source: str | None = None

    @classmethod
    def load(cls, path: str | Path | None) -> LocalSettings:
        if path is None:
            return cls()
        file = Path(path)
        try:
            data: Any = orjson.loads(file.read_bytes())
        except FileNotFoundError:
            raise SettingsFileError(f"settings file not found: {file}") from None
        except orjson.JSONDecodeError as exc:
            raise SettingsFileError(f"settings file {file} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SettingsFileError(f"settings file {file}: expected a JSON object")
        if data.get("IsEncrypted"):
            raise SettingsFileError(f"settings file {file} is encrypted (func settings decrypt); this host reads plain "
                                    "text")
        values = {str(k): "" if v is None else str(v) for k, v in (data.get("Values") or {}).items()}
        keys = {str(k): str(v) for k, v in (data.get("Keys") or {}).items() if v}
        port = (data.get("Host") or {}).get("LocalHttpPort")
        return cls(values, keys, int(port) if port else None, str(file))

    def apply(self, environ: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        for name, value in self.values.items():
            if env.get(name):
                log.warning("Skipping '%s' from local settings as it's already defined in current environment "
                            "variables.", name)
                continue
            env[name] = value

    @staticmethod
    def disabled(function_name: str, environ: MutableMapping[str, str] | None = None) -> bool:
        env = os.environ if environ is None else environ
        return env.get(f"AzureWebJobs.{function_name}.Disabled", "").strip().lower() in _TRUE

    def accepted_keys(self, function_name: str, auth_level: str) -> set[str] | None:
        """The keys that open ``function_name``; None when no key is required (no keys configured, anonymous)."""
        if not self.keys or auth_level.upper() == "ANONYMOUS":
            return None
        master = {self.keys["master"]} if "master" in self.keys else set()
        if auth_level.upper() == "ADMIN":
            return master
        own = {v for k, v in self.keys.items() if k in ("default", function_name)}
        return own | master

    def system_keys(self, extension: str) -> set[str] | None:
        """Keys for a system webhook (``eventgrid_extension``); None when none is configured."""
        if extension not in self.keys:
            return None
        return {self.keys[extension], *([self.keys["master"]] if "master" in self.keys else [])}

    def admin_keys(self) -> set[str] | None:
        return {self.keys["master"]} if "master" in self.keys else None
