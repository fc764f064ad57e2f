"""infra/main.json (ARM) and infra/main.parameters.json: what they create and wire, checked without Azure.

Role definition ids are Azure built-in role ids, as listed in
https://learn.microsoft.com/azure/role-based-access-control/built-in-roles (per category page: internet-of-things,
storage, analytics, integration, monitor, security).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.filters.event_grid import SubscriptionFilter
from shared.settings.app_config import AppConfig
from shared.settings.environment import APP_ROOT, Settings
from twinbridge.cli import main

INFRA = APP_ROOT / "infra"
TEMPLATE = json.loads((INFRA / "main.json").read_text())
PARAMETERS = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
APP_CONFIG = INFRA / "app-config.yaml"

# role name -> built-in role definition id (learn.microsoft.com built-in roles pages, cited above)
ADT_DATA_OWNER = "bcd981a7-7f74-457b-83e1-cceb9e632ffe"  # Azure Digital Twins Data Owner
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"  # Storage Blob Data Owner
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"  # Storage Blob Data Contributor
TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"  # Storage Table Data Contributor
EH_DATA_SENDER = "2b629674-e913-4c01-ae53-ef4638d8f975"  # Azure Event Hubs Data Sender
EH_DATA_RECEIVER = "a638d3c7-ab3a-418d-83e6-5f17a39d4fde"  # Azure Event Hubs Data Receiver
SB_DATA_SENDER = "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"  # Azure Service Bus Data Sender
EG_DATA_SENDER = "d5a91429-5739-47e2-a06b-3470a27159e7"  # EventGrid Data Sender
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"  # Monitoring Metrics Publisher
IOTHUB_DATA_READER = "b447c946-2db7-41ec-983d-d8bf3b1c77e3"  # IoT Hub Data Reader
KV_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"  # Key Vault Secrets User


def resources(kind: str) -> list[dict[str, Any]]:
    return [r for r in TEMPLATE["resources"] if r["type"] == kind]


def one(kind: str) -> dict[str, Any]:
    [resource] = resources(kind)
    return resource


def resolve(value: Any) -> Any:
    """Resolve the ARM expressions this test needs: ``[parameters('x')]`` from the parameters file (or default)."""
    if isinstance(value, str):
        match = re.fullmatch(r"\[parameters\('(\w+)'\)\]", value)
        if match:
            name = match.group(1)
            if name in PARAMETERS:
                return PARAMETERS[name]["value"]
            return TEMPLATE["parameters"][name]["defaultValue"]
    return value


def app_settings() -> dict[str, str]:
    site = one("Microsoft.Web/sites")
    return {s["name"]: s["value"] for s in site["properties"]["siteConfig"]["appSettings"]}


# ---------------------------------------------------------------------------------------------------------------
# the document itself


def test_every_parameter_and_variable_used_is_defined() -> None:
    text = json.dumps(TEMPLATE)
    used_parameters = set(re.findall(r"parameters\('(\w+)'\)", text))
    used_variables = set(re.findall(r"variables\('(\w+)'\)", text))
    assert used_parameters <= set(TEMPLATE["parameters"]), used_parameters - set(TEMPLATE["parameters"])
    assert used_variables <= set(TEMPLATE["variables"]), used_variables - set(TEMPLATE["variables"])
    assert set(TEMPLATE["parameters"]) - used_parameters == set(), "unused parameters"


def test_the_parameters_file_matches_the_template() -> None:
    assert set(PARAMETERS) <= set(TEMPLATE["parameters"])
    required = {n for n, p in TEMPLATE["parameters"].items() if "defaultValue" not in p}
    assert required <= set(PARAMETERS), required - set(PARAMETERS)


def test_resource_names_never_use_runtime_values() -> None:
    # ARM must know every name before deploying: reference()/list*() are not allowed there.
    for resource in TEMPLATE["resources"]:
        assert "reference(" not in resource["name"] and "list" not in resource["name"].lower(), resource["name"]


# ---------------------------------------------------------------------------------------------------------------
# hosting, identity, storage, telemetry


def test_function_app_is_linux_python_on_flex_consumption_with_a_system_identity() -> None:
    plan = one("Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"} and plan["properties"]["reserved"] is True
    site = one("Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"
    assert site["identity"] == {"type": "SystemAssigned"}
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "[parameters('pythonVersion')]"}
    python = TEMPLATE["parameters"]["pythonVersion"]
    assert python["defaultValue"] == "3.13" and python["allowedValues"] == ["3.11", "3.13"]
    assert config["deployment"]["storage"]["authentication"] == {"type": "SystemAssignedIdentity"}
    assert site["properties"]["httpsOnly"] is True
    assert site["properties"]["siteConfig"]["ftpsState"] == "Disabled"
    policies = {r["name"].split("/")[-1].strip("')]"): r["properties"]["allow"]
                for r in resources("Microsoft.Web/sites/basicPublishingCredentialsPolicies")}
    assert policies == {"ftp": False, "scm": False}


def test_storage_has_no_shared_key_and_the_host_uses_the_identity() -> None:
    storage = one("Microsoft.Storage/storageAccounts")["properties"]
    assert storage["allowSharedKeyAccess"] is False and storage["allowBlobPublicAccess"] is False
    assert storage["minimumTlsVersion"] == "TLS1_2"
    settings = app_settings()
    assert settings["AzureWebJobsStorage__accountName"] == "[variables('storageName')]"
    assert "AzureWebJobsStorage" not in settings  # no connection string, hence no key


def test_application_insights_on_a_workspace_with_entra_only_ingestion() -> None:
    component = one("Microsoft.Insights/components")["properties"]
    assert component["WorkspaceResourceId"] == "[variables('workspaceId')]"
    assert component["DisableLocalAuth"] is True
    assert resources("Microsoft.OperationalInsights/workspaces")
    settings = app_settings()
    assert "ConnectionString" in settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"


def test_app_settings_feed_the_apps_own_settings_reader() -> None:
    settings = app_settings()
    # Flex Consumption sets the runtime in functionAppConfig and rejects these two settings.
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings and "FUNCTIONS_EXTENSION_VERSION" not in settings
    assert settings["TWINBRIDGE_ALLOWED_TOPICS"] == "[variables('iotHubId')]"
    assert TEMPLATE["variables"]["iotHubId"] == "[resourceId('Microsoft.Devices/IotHubs', parameters('iotHubName'))]"
    assert settings["ADT_URL"].startswith("[concat('https://', reference(variables('adtId')")
    # What the app would read with these settings, runtime values stood in for the expressions:
    stand_ins = {"[variables('iotHubId')]": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/h",
                 settings["ADT_URL"]: "https://x.api.weu.digitaltwins.azure.net",
                 "[parameters('appConfigPath')]": resolve("[parameters('appConfigPath')]")}
    env = {name: stand_ins.get(value, value) for name, value in settings.items()}
    read = Settings.from_env(env)
    assert read.allowed_topics == ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/h",)
    assert read.adt_url == "https://x.api.weu.digitaltwins.azure.net"
    assert read.state_store == "table"
    assert read.config_path == "infra/app-config.yaml" and (APP_ROOT / read.config_path).is_file()


def test_no_secret_or_key_material_in_the_template() -> None:
    text = json.dumps(TEMPLATE)
    for marker in ("listKeys", "listConnectionStrings", "AccountKey=", "SharedAccessKey", "listSecrets",
                   "InstrumentationKey="):
        assert marker not in text, marker
    for name, parameter in TEMPLATE["parameters"].items():
        assert parameter["type"] not in ("securestring", "secureObject") or "defaultValue" not in parameter, name
    settings = app_settings()
    # The one secret the app can need (IoT Hub built-in endpoint: SAS only) is a Key Vault reference.
    assert settings["IOTHUB_EVENTS_CONNECTION"].startswith("[concat('@Microsoft.KeyVault(VaultName=")
    vault = one("Microsoft.KeyVault/vaults")["properties"]
    assert vault["enableRbacAuthorization"] is True
    # Egress services accept Entra only.
    assert one("Microsoft.EventHub/namespaces")["properties"]["disableLocalAuth"] is True
    assert one("Microsoft.ServiceBus/namespaces")["properties"]["disableLocalAuth"] is True
    assert one("Microsoft.EventGrid/topics")["properties"]["disableLocalAuth"] is True
    for marker in ("sharedaccesskey", "accountkey", "password", "secret"):
        assert marker not in json.dumps(PARAMETERS).lower(), marker


# ---------------------------------------------------------------------------------------------------------------
# role assignments


def _assignments() -> set[tuple[str, str, str]]:
    """(identity owner, scope, role id) for every role assignment."""
    found = set()
    for r in resources("Microsoft.Authorization/roleAssignments"):
        role_expr = r["properties"]["roleDefinitionId"]
        role_key = re.search(r"variables\('roles'\)\.(\w+)", role_expr)
        assert role_key, role_expr
        role_id = TEMPLATE["variables"]["roles"][role_key.group(1)]
        owner = re.search(r"reference\(variables\('(\w+)'\)", r["properties"]["principalId"])
        assert owner and r["properties"]["principalType"] == "ServicePrincipal"
        # the assignment's name is derived from the same scope, owner and role, so redeploying is idempotent
        assert r["name"] == f"[guid({r['scope'][1:-1]}, variables('{owner.group(1)}'), '{role_id}')]"
        found.add((owner.group(1), r["scope"], role_id))
    return found


def test_each_identity_gets_exactly_the_roles_it_needs() -> None:
    assert _assignments() == {
        ("siteId", "[variables('adtId')]", ADT_DATA_OWNER),
        ("siteId", "[variables('storageId')]", BLOB_DATA_OWNER),
        ("siteId", "[variables('storageId')]", TABLE_DATA_CONTRIBUTOR),
        ("siteId", "[variables('adtHubId')]", EH_DATA_RECEIVER),
        ("siteId", "[variables('egressHubId')]", EH_DATA_SENDER),
        ("siteId", "[variables('egressSbTopicId')]", SB_DATA_SENDER),
        ("siteId", "[variables('egressTopicId')]", EG_DATA_SENDER),
        ("siteId", "[variables('appInsightsId')]", METRICS_PUBLISHER),
        ("siteId", "[variables('iotHubId')]", IOTHUB_DATA_READER),
        ("siteId", "[variables('keyVaultId')]", KV_SECRETS_USER),
        ("adtId", "[variables('adtHubId')]", EH_DATA_SENDER),
        ("systemTopicId", "[variables('storageId')]", BLOB_DATA_CONTRIBUTOR),
    }


# ---------------------------------------------------------------------------------------------------------------
# Event Grid and ADT egress


def test_system_topic_on_the_hub_and_a_subscription_to_the_function() -> None:
    topic = one("Microsoft.EventGrid/systemTopics")
    assert topic["properties"] == {"source": "[variables('iotHubId')]", "topicType": "Microsoft.Devices.IoTHubs"}
    subscription = one("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    destination = subscription["properties"]["destination"]
    assert destination["endpointType"] == "AzureFunction"
    assert destination["properties"]["resourceId"] == \
        "[concat(variables('siteId'), '/functions/', variables('functionName'))]"
    from functions.ingest_iothub_events import ingest_iothub_events

    function = ingest_iothub_events.build()
    assert TEMPLATE["variables"]["functionName"] == function.get_function_name()
    assert [b.type for b in function.get_bindings()] == ["eventGridTrigger"]
    props = subscription["properties"]
    assert props["eventDeliverySchema"] == "EventGridSchema"
    assert props["deadLetterWithResourceIdentity"]["identity"] == {"type": "SystemAssigned"}
    assert resolve(props["retryPolicy"]["eventTimeToLiveInMinutes"]) == 1440


def test_the_deployed_filter_equals_filters_export_for_the_same_config(capsys: pytest.CaptureFixture[str]) -> None:
    subscription = one("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    deployed = resolve(subscription["properties"]["filter"])
    assert main(["filters", "export", "--config", str(APP_CONFIG), "--format", "arm"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert deployed == exported
    config = AppConfig.load(APP_CONFIG)
    assert deployed == SubscriptionFilter.from_dict(config.sections["filters"]["subscription"]).to_arm()
    # the event types Event Grid delivers are the ones the app accepts
    assert deployed["includedEventTypes"] == config.event_types


def test_the_checked_in_parameters_are_regenerated_from_the_config(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "main.parameters.json"
    assert main(["infra", "params", "--config", str(APP_CONFIG), "--iot-hub", PARAMETERS["iotHubName"]["value"],
                 "--app-config-path", "infra/app-config.yaml", "--out", str(out)]) == 0
    assert capsys.readouterr().err.startswith("wrote ")  # no warning for the shipped config
    assert out.read_text() == (INFRA / "main.parameters.json").read_text(), \
        "infra/main.parameters.json is stale: regenerate it with `python -m twinbridge infra params` (docs/deploy.md)"


def test_adt_endpoint_uses_adts_identity_and_the_route_command_is_an_output() -> None:
    endpoint = one("Microsoft.DigitalTwins/digitalTwinsInstances/endpoints")["properties"]
    assert endpoint["authenticationType"] == "IdentityBased" and endpoint["endpointType"] == "EventHub"
    assert endpoint["entityPath"] == "adt-notifications"
    assert one("Microsoft.DigitalTwins/digitalTwinsInstances")["identity"] == {"type": "SystemAssigned"}
    assert "az dt route create" in TEMPLATE["outputs"]["adtRouteCommand"]["value"]
    assert "parameters('adtRouteFilter')" in TEMPLATE["outputs"]["adtRouteCommand"]["value"]


def test_every_percent_setting_a_binding_names_is_an_app_setting() -> None:
    """A ``%NAME%`` in a binding (schedule, event hub name, consumer group) that the Function App does not define
    fails that function's indexing in Azure ("does not resolve to a value"). RECONCILE_SCHEDULE was missing."""
    import function_app
    from twinbridge.localhost.runtime import indexed  # the app indexed once per process, as the worker does

    named: dict[str, str] = {}
    for function in indexed(function_app.app).values():
        bindings = json.dumps([function.trigger, *function.inputs, *function.outputs])
        for name in re.findall(r"%([A-Za-z0-9_]+)%", bindings):
            named[name] = function.name
    assert named, "no %setting% found in any binding: the check reads the wrong thing"
    missing = {name: function for name, function in named.items() if name not in app_settings()}
    assert missing == {}
