"""The deployed app config and the template agree: every ${SETTING} the config refers to is set by infra/main.json."""

import re

import orjson

from shared.settings.app_config import AppConfig
from shared.settings.environment import APP_ROOT

INFRA = APP_ROOT / "infra"


def _template_app_settings() -> set[str]:
    names: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "appSettings" and isinstance(value, list):
                    names.update(s["name"] for s in value if isinstance(s, dict) and "name" in s)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(orjson.loads((INFRA / "main.json").read_bytes()))
    return names


def test_every_setting_reference_in_the_deployed_config_is_wired_by_the_template():
    text = (INFRA / "app-config.yaml").read_text()
    referenced = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
    assert referenced, "the deployed config is expected to name its egress endpoints by app setting"
    assert referenced <= _template_app_settings()


def test_the_deployed_config_loads_with_the_templates_settings():
    env = {name: "https://example.invalid/x" if "ENDPOINT" in name else "example.servicebus.windows.net"
           for name in _template_app_settings()}
    config = AppConfig.load(INFRA / "app-config.yaml", env=env, require_settings=True)
    assert config.sections["endpoints"]["timeseries"]["namespace"] == "example.servicebus.windows.net"
    assert {r["name"] for r in config.sections["routes"]} == {"property-changes", "lifecycle", "all-changes"}
