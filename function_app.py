"""The Function App: builds the FunctionApp and registers the doors' blueprints. Nothing else lives here."""

import azure.functions as func

from functions.collect_dead_letters import bp as collect_dead_letters
from functions.eventgrid_webhook import bp as eventgrid_webhook
from functions.ingest_iothub_events import bp as ingest_iothub_events
from functions.ingest_iothub_stream import bp as ingest_iothub_stream
from functions.reconcile_registry import bp as reconcile_registry
from functions.route_twin_changes import bp as route_twin_changes
from shared.observability import configure_telemetry

configure_telemetry()  # Application Insights via OpenTelemetry when APPLICATIONINSIGHTS_CONNECTION_STRING is set
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(ingest_iothub_events)
app.register_functions(eventgrid_webhook)
app.register_functions(ingest_iothub_stream)
app.register_functions(reconcile_registry)
app.register_functions(route_twin_changes)
app.register_functions(collect_dead_letters)
