"""Drive ``azure-functions-runtime`` (the Functions Python execution runtime, Python 3.13+) as the host does.

In Azure, the host starts the Python proxy worker, which talks gRPC to the host and calls the runtime's five verbs
in-process: worker init, functions metadata, function load, invocation, environment reload. Each verb takes the
host's ``StreamingMessage`` (wrapped with ``properties={"host": ..., "protos": <the message module>}``) and answers
with the response message built from that same module. This module plays the proxy worker's part: it hands the
runtime a message module compiled from our own subset of the published ``FunctionRpc.proto`` (``rpc/``, compiled
with grpcio-tools on first use into ``.run/rpc-protos/``) and calls the verbs — so the runtime's own indexing,
binding checks, converters and invocation path run, the same code as in Azure.

Only on Python 3.13+ with ``azure-functions-runtime`` and ``grpcio-tools`` installed (``available()`` says why not).
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import importlib
import importlib.util
import json
import shutil
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

PROTO_DIR = Path(__file__).resolve().parent / "rpc"
PROTO_FILE = PROTO_DIR / "FunctionRpc.proto"
APP_ROOT = Path(__file__).resolve().parents[2]


class RuntimeRefused(Exception):
    """The runtime answered a verb with Failure (e.g. a function it will not index or load)."""


def available() -> str | None:
    """None when the real runtime can run here, else the reason it cannot."""
    if sys.version_info < (3, 13):
        return f"azure-functions-runtime serves Python 3.13+ (this is {sys.version_info[0]}.{sys.version_info[1]})"
    for module, package in (("azure_functions_runtime", "azure-functions-runtime"), ("grpc_tools", "grpcio-tools")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed in this Python ({sys.executable})"
    return None


def compile_protos(out_dir: Path | None = None) -> ModuleType:
    """Compile rpc/FunctionRpc.proto with grpcio-tools (cached by the .proto's hash) and import the module."""
    from grpc_tools import protoc  # type: ignore[import-untyped,unused-ignore]

    source = PROTO_FILE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    target = (out_dir or APP_ROOT / ".run" / "rpc-protos") / digest
    generated = target / "FunctionRpc_pb2.py"
    if not generated.is_file():
        # Compiled aside and renamed into place: several processes (test workers, hosts) may compile at once, and
        # none may import a file another is still writing.
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{digest}-"))
        include = Path(protoc.__file__).resolve().parent / "_proto"  # google/protobuf/*.proto ship with grpc_tools
        rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={scratch}", str(PROTO_FILE)])
        if rc != 0 or not (scratch / generated.name).is_file():
            shutil.rmtree(scratch, ignore_errors=True)
            raise RuntimeError(f"protoc failed ({rc}) compiling {PROTO_FILE}")
        try:
            scratch.rename(target)  # atomic; replaces an empty directory left by an older version of this code
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)  # another process put a complete copy there first
        if not generated.is_file():
            raise RuntimeError(f"no compiled {generated.name} in {target}")
    spec = importlib.util.spec_from_file_location("twinbridge_function_rpc_pb2", generated)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Invocation:
    """One invocation's answer: status, the return value and output bindings decoded to Python values."""
    ok: bool
    response: Any
    return_value: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def error(self) -> str:
        return "" if self.ok else str(self.response.result.exception.message)


class RealRuntime:
    """The runtime's five verbs over one function app directory (one per process: the runtime keeps globals)."""

    def __init__(self, app_dir: Path = APP_ROOT, protos: ModuleType | None = None) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.pb = protos or compile_protos()
        import azure_functions_runtime as runtime

        self.runtime = runtime
        # The proxy worker runs the verbs on one event loop of its own; invocations may overlap (the runtime runs
        # sync functions in its thread pool), so callers from any thread submit to that loop.
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="functions-runtime", daemon=True)
        self._thread.start()
        self.functions: dict[str, Any] = {}  # name → RpcFunctionMetadata

    def _call(self, verb: Any, **content: Any) -> Any:
        message = self.pb.StreamingMessage(request_id=str(uuid.uuid4()), **content)
        request = SimpleNamespace(request=message, properties={"host": "127.0.0.1", "protos": self.pb})
        return asyncio.run_coroutine_threadsafe(verb(request), self.loop).result()

    def _check(self, verb: str, response: Any) -> Any:
        if response.result.status != self.pb.StatusResult.Success:
            raise RuntimeRefused(f"{verb}: {response.result.exception.message}")
        return response

    def init(self) -> Any:
        """WorkerInitRequest: the runtime imports function_app and indexes it here (failures are answered)."""
        if str(self.app_dir) not in sys.path:
            sys.path.insert(0, str(self.app_dir))  # the proxy worker puts the app directory on sys.path
        request = self.pb.WorkerInitRequest(host_version="4.1040.0", function_app_directory=str(self.app_dir),
                                            capabilities={})
        return self._check("worker init", self._call(self.runtime.worker_init_request, worker_init_request=request))

    def metadata(self) -> dict[str, Any]:
        request = self.pb.FunctionsMetadataRequest(function_app_directory=str(self.app_dir))
        response = self._check("functions metadata", self._call(self.runtime.functions_metadata_request,
                                                                functions_metadata_request=request))
        self.functions = {m.name: m for m in response.function_metadata_results}
        return self.functions

    def load(self, name: str) -> Any:
        meta = self.functions[name]
        request = self.pb.FunctionLoadRequest(function_id=meta.function_id, metadata=meta)
        return self._check(f"function load {name}", self._call(self.runtime.function_load_request,
                                                               function_load_request=request))

    def start(self) -> dict[str, Any]:
        """init → metadata → load every function: what the host does before the first invocation."""
        self.init()
        functions = self.metadata()
        for name in functions:
            self.load(name)
        return functions

    def reload(self, environment: dict[str, str]) -> Any:
        request = self.pb.FunctionEnvironmentReloadRequest(environment_variables=environment,
                                                           function_app_directory=str(self.app_dir))
        return self._check("environment reload", self._call(self.runtime.function_environment_reload_request,
                                                            function_environment_reload_request=request))

    def invoke(self, name: str, inputs: dict[str, Any], trigger_metadata: dict[str, Any] | None = None,
               retry_count: int = 0) -> Invocation:
        """InvocationRequest with ``inputs`` (binding name → TypedData) as the host sends it."""
        meta = self.functions[name]
        request = self.pb.InvocationRequest(
            invocation_id=str(uuid.uuid4()), function_id=meta.function_id,
            input_data=[self.pb.ParameterBinding(name=k, data=v) for k, v in inputs.items()],
            trigger_metadata=trigger_metadata or {},
            retry_context=self.pb.RetryContext(retry_count=retry_count, max_retry_count=-1))
        response = self._call(self.runtime.invocation_request, invocation_request=request)
        ok = response.result.status == self.pb.StatusResult.Success
        return Invocation(ok, response,
                          typed_value(response.return_value) if response.HasField("return_value") else None,
                          {b.name: typed_value(b.data) for b in response.output_data})

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)

    def versions(self) -> str:
        import importlib.metadata as md

        return (f"azure-functions-runtime {md.version('azure-functions-runtime')}, azure-functions "
                f"{md.version('azure-functions')}, Python {sys.version.split()[0]}")

    # TypedData builders, shaped as the host sends them.
    def string(self, text: str) -> Any:
        return self.pb.TypedData(string=text)

    def json(self, value: Any) -> Any:
        return self.pb.TypedData(json=value if isinstance(value, str) else json.dumps(value))

    def bytes(self, data: builtins.bytes) -> Any:
        return self.pb.TypedData(bytes=data)

    def collection_bytes(self, items: list[builtins.bytes]) -> Any:
        return self.pb.TypedData(collection_bytes=self.pb.CollectionBytes(bytes=items))

    def http(self, method: str, url: str, headers: dict[str, str], body: builtins.bytes = b"",
             query: dict[str, str] | None = None, params: dict[str, str] | None = None) -> Any:
        # Core Tools and Azure send the body as bytes when the worker declares RawHttpBodyBytes (the runtime does).
        return self.pb.TypedData(http=self.pb.RpcHttp(
            method=method, url=url, headers=headers, query=query or {}, params=params or {},
            body=self.pb.TypedData(bytes=body), rawBody=self.pb.TypedData(bytes=body)))


def typed_value(data: Any) -> Any:
    """A TypedData answer as a plain Python value (http → dict with status, headers, body bytes)."""
    kind = data.WhichOneof("data")
    if kind is None:
        return None
    if kind == "http":
        body = data.http.body
        raw = body.bytes if body.WhichOneof("data") == "bytes" else typed_value(body)
        if isinstance(raw, str):
            raw = raw.encode()
        return {"status": int(data.http.status_code or 200), "headers": dict(data.http.headers), "body": raw or b""}
    return getattr(data, kind)


def binding_json(meta: Any) -> list[dict[str, Any]]:
    """The function's bindings as the host reads them (raw_bindings: the function.json entries)."""
    return [json.loads(raw) for raw in meta.raw_bindings]
