"""Run generated Workers locally under workerd, the open-source Workers runtime.

`LocalEdge` writes a capnp config for the dispatch Worker, the user Workers and two helpers,
starts `workerd serve` on 127.0.0.1 with port 0 and learns the bound ports over `--control-fd`,
and stops it. The helpers:

- a dispatch-namespace shim (templates/namespace_shim.js), loaded as an internal extension
  module behind a wrapped binding: `env.DISPATCHER.get(name, args, {limits})` maps script names
  to the user Workers' services and throws `Worker not found.` for any other name, like Workers
  for Platforms. Limits are not enforced locally; each get() is recorded.
- a recorder Worker (templates/recorder.js) on a second socket: it keeps the shim's records
  (`dispatches`) and, bound as `EVENTS`, the dispatcher's lifecycle events (`events`).

Bindings are translated from each bundle's upload metadata (plain_text, secret_text, json,
service, dispatch_namespace, durable_object_namespace: a class of the Worker itself, stored in
memory or, with `objects_dir`, on disk), so what runs here is what would be uploaded.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from claw402.cloudflare.bundle import COMPATIBILITY_DATE, JS_MODULE, WorkerBundle
from claw402.lifecycle import Stops, terminate
from claw402.nodetools import binary

SHIM_MODULE = "claw402:namespace-shim"
R2_SHIM_MODULE = "claw402:r2-shim"
RECORDER_BINDING = "__claw402_recorder"
RECORDER_SERVICE = "claw402-recorder"
DISPATCHER_SERVICE = "claw402-dispatcher"
OBJECTS_SERVICE = "claw402-objects"
_SAFE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class WorkerdError(RuntimeError):
    """workerd refused the config or did not come up; the message carries its log."""


def template(name: str) -> bytes:
    return resources.files("claw402.cloudflare").joinpath("templates", name).read_bytes()


def _safe(value: str, what: str) -> str:
    if not _SAFE.fullmatch(value):
        raise WorkerdError(f"{what} {value!r} cannot be used in a workerd config")
    return value


def _service_name(script_name: str) -> str:
    return "script:" + _safe(script_name, "script name")


def _unique_key(class_name: str) -> str:
    """A Durable Object namespace's key: its objects' ids derive from it, and on disk it
    names the class's folder."""
    return f"claw402-{class_name}"


@dataclass
class _Config:
    """Accumulates files and capnp text under one folder."""

    root: Path
    counter: int = 0
    services: list[str] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)

    def embed(self, content: bytes, suffix: str = ".txt") -> str:
        self.counter += 1
        name = f"f{self.counter}{suffix}"
        (self.root / name).write_bytes(content)
        return f'embed "{name}"'


class LocalEdge(Stops):
    """The edge on this machine: dispatcher + user Workers + shim + recorder under workerd.

    `dispatcher` may be None to run user Workers alone (then `url` serves the first tenant).
    `secrets` gives each script's secret values by name (secret_text bindings need one).
    `namespace_binding=False` drops the dispatcher's DISPATCHER binding (a misconfiguration the
    dispatcher must answer with 500 dispatcher_binding_missing). `events_to_recorder` binds
    EVENTS to the recorder so tests can read the lifecycle events. `json_modules=True` loads
    `.json` modules as JSON (what wrangler and a hand-written workerd config do), not as text
    (what the upload sends). `r2` gives R2 buckets' objects (bucket -> key -> bytes): written
    to a folder that a workerd disk service serves, read through templates/r2_shim.js by
    `r2_bucket` bindings. `objects_dir` keeps the Durable Objects' storage in that folder (a
    workerd disk service; one subfolder per class, `object_folder`) instead of memory: removing
    a class's subfolder while workerd runs takes that storage away, so an object not yet opened
    fails as an object whose storage is unavailable does.
    """

    def __init__(
        self,
        dispatcher: WorkerBundle | None,
        tenants: Iterable[WorkerBundle] = (),
        *,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        namespace_binding: bool = True,
        events_to_recorder: bool = True,
        start_timeout: float = 20.0,
        json_modules: bool = False,
        r2: Mapping[str, Mapping[str, bytes]] | None = None,
        objects_dir: Path | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.tenants = list(tenants)
        self.secrets = {k: dict(v) for k, v in (secrets or {}).items()}
        self.namespace_binding = namespace_binding
        self.events_to_recorder = events_to_recorder
        self.start_timeout = start_timeout
        self.json_modules = json_modules
        self.r2 = {bucket: dict(objects) for bucket, objects in (r2 or {}).items()}
        self.objects_dir = objects_dir
        self.ports: dict[str, int] = {}
        self.startup_seconds: float | None = None
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None
        self._http: httpx.Client | None = None

    # -- config ------------------------------------------------------------------------

    def write_config(self, folder: Path) -> Path:
        cfg = _Config(folder)
        names = [t.script_name for t in self.tenants]
        if len(set(names)) != len(names):
            raise WorkerdError(f"two user Workers share a script name: {sorted(names)}")
        for bundle in self.tenants:
            self._worker(cfg, _service_name(bundle.script_name), bundle)
        if self.dispatcher is not None:
            self._worker(cfg, DISPATCHER_SERVICE, self.dispatcher, dispatcher=True)
        recorder = cfg.embed(template("recorder.js"), ".js")
        cfg.services.append(
            f'(name = "{RECORDER_SERVICE}", worker = (modules = [(name = "recorder.js", '
            f'esModule = {recorder})], compatibilityDate = "{COMPATIBILITY_DATE}"))'
        )
        # fetch() may reach local services (a facilitator on 127.0.0.1), unlike workerd's default.
        cfg.services.append(
            '(name = "internet", network = (allow = ["public", "private", "local"]))'
        )
        front = (
            DISPATCHER_SERVICE if self.dispatcher else _service_name(self.tenants[0].script_name)
        )
        for bucket, objects in self.r2.items():
            bucket_dir = (folder / "r2" / _safe(bucket, "bucket")).resolve()
            for key, content in objects.items():
                path = (bucket_dir / key).resolve()
                if not path.is_relative_to(bucket_dir):
                    raise WorkerdError(f"R2 key {key!r} leaves its bucket")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
            cfg.services.append(
                f'(name = "r2:{bucket}", disk = (path = "{bucket_dir}", writable = false))'
            )
        if self.objects_dir is not None:
            self.objects_dir.mkdir(parents=True, exist_ok=True)
            cfg.services.append(
                f'(name = "{OBJECTS_SERVICE}", disk = (path = "{self.objects_dir.resolve()}", '
                "writable = true))"
            )
        shim = cfg.embed(template("namespace_shim.js"), ".js")
        r2_shim = cfg.embed(template("r2_shim.js"), ".js")
        text = "\n".join(
            [
                'using Workerd = import "/workerd/workerd.capnp";',
                "const config :Workerd.Config = (",
                "  services = [",
                *(f"    {s}," for s in cfg.services),
                "  ],",
                "  sockets = [",
                f'    (name = "http", address = "127.0.0.1:0", http = (), service = "{front}"),',
                f'    (name = "control", address = "127.0.0.1:0", http = (), '
                f'service = "{RECORDER_SERVICE}"),',
                "  ],",
                f'  extensions = [(modules = [(name = "{SHIM_MODULE}", esModule = {shim}, '
                f'internal = true), (name = "{R2_SHIM_MODULE}", esModule = {r2_shim}, '
                "internal = true)])],",
                ");",
                "",
            ]
        )
        path = folder / "config.capnp"
        path.write_text(text)
        return path

    def _worker(
        self, cfg: _Config, service: str, bundle: WorkerBundle, *, dispatcher: bool = False
    ) -> None:
        modules = []
        for module in bundle.modules:
            kind = "esModule" if module.content_type == JS_MODULE else "text"
            if self.json_modules and module.name.endswith(".json"):
                kind = "json"
            ref = cfg.embed(module.content, ".js" if kind == "esModule" else ".txt")
            modules.append(f'(name = "{_safe(module.name, "module name")}", {kind} = {ref})')
        bindings = [self._binding(cfg, bundle, b) for b in bundle.metadata.get("bindings", [])]
        bindings = [b for b in bindings if b]
        if dispatcher and self.events_to_recorder:
            bindings.append(f'(name = "EVENTS", service = "{RECORDER_SERVICE}")')
        date = bundle.metadata.get("compatibility_date", COMPATIBILITY_DATE)
        flags = ", ".join(
            f'"{_safe(f, "flag")}"' for f in bundle.metadata.get("compatibility_flags", [])
        )
        # Durable Objects the Worker implements itself, kept in memory for the process's life.
        classes = sorted(
            {
                _safe(str(b["class_name"]), "class name")
                for b in bundle.metadata.get("bindings", [])
                if b["type"] == "durable_object_namespace" and not b.get("script_name")
            }
        )
        objects = ""
        if classes:
            namespaces = ", ".join(
                f'(className = "{c}", uniqueKey = "{_unique_key(c)}", enableSql = true)'
                for c in classes
            )
            storage = "inMemory = void"
            if self.objects_dir is not None:
                storage = f'localDisk = "{OBJECTS_SERVICE}"'
            objects = (
                f", durableObjectNamespaces = [{namespaces}], durableObjectStorage = ({storage})"
            )
        cfg.services.append(
            f'(name = "{service}", worker = (modules = [{", ".join(modules)}], '
            f'compatibilityDate = "{_safe(date, "date")}", compatibilityFlags = [{flags}], '
            f"bindings = [{', '.join(bindings)}]{objects}))"
        )

    def _binding(self, cfg: _Config, bundle: WorkerBundle, spec: Mapping[str, Any]) -> str | None:
        name = _safe(str(spec["name"]), "binding name")
        kind = spec["type"]
        if kind == "plain_text":
            return f'(name = "{name}", text = {cfg.embed(str(spec["text"]).encode())})'
        if kind == "secret_text":
            value = self.secrets.get(bundle.script_name, {}).get(name)
            if value is None:
                raise WorkerdError(f"{bundle.script_name}: no value given for secret {name}")
            return f'(name = "{name}", text = {cfg.embed(value.encode())})'
        if kind == "json":
            return f'(name = "{name}", json = {cfg.embed(json.dumps(spec["json"]).encode())})'
        if kind == "durable_object_namespace":
            if spec.get("script_name"):
                raise WorkerdError(
                    f"{bundle.script_name}: Durable Objects of another script are not run locally"
                )
            return f'(name = "{name}", durableObjectNamespace = "{spec["class_name"]}")'
        if kind == "service":
            return f'(name = "{name}", service = "{_service_name(str(spec["service"]))}")'
        if kind == "dispatch_namespace":
            if not self.namespace_binding:
                return None
            inner = [f'(name = "{RECORDER_BINDING}", service = "{RECORDER_SERVICE}")']
            inner += [
                f'(name = "{t.script_name}", service = "{_service_name(t.script_name)}")'
                for t in self.tenants
            ]
            return (
                f'(name = "{name}", wrapped = (moduleName = "{SHIM_MODULE}", '
                f"innerBindings = [{', '.join(inner)}]))"
            )
        if kind == "r2_bucket":
            bucket = _safe(str(spec["bucket_name"]), "bucket")
            if bucket not in self.r2:
                raise WorkerdError(f"{bundle.script_name}: no objects given for R2 bucket {bucket}")
            return (
                f'(name = "{name}", wrapped = (moduleName = "{R2_SHIM_MODULE}", '
                f'innerBindings = [(name = "disk", service = "r2:{bucket}")]))'
            )
        raise WorkerdError(f"{bundle.script_name}: binding type {kind!r} has no local equivalent")

    # -- process -----------------------------------------------------------------------

    def start(self) -> LocalEdge:
        if self.dispatcher is None and not self.tenants:
            raise WorkerdError("nothing to run: give a dispatcher or user Workers")
        self._dir = Path(tempfile.mkdtemp(prefix="claw402-workerd-"))
        config = self.write_config(self._dir)
        self._log = self._dir / "workerd.log"
        read_fd, write_fd = os.pipe()
        started = time.perf_counter()
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [binary("workerd"), "serve", str(config), f"--control-fd={write_fd}"],
                pass_fds=[write_fd],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
            )
        os.close(write_fd)
        try:
            self._await_listen(read_fd)
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read_fd)
        self.startup_seconds = time.perf_counter() - started
        return self

    def _await_listen(self, fd: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        buffer = b""
        assert self._process is not None
        while {"http", "control"} - set(self.ports):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerdError(
                    f"workerd did not listen within {self.start_timeout}s\n{self.log()}"
                )
            ready, _, _ = select.select([fd], [], [], min(remaining, 0.2))
            if not ready:
                if self._process.poll() is not None:
                    raise self._exited()
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self._process.wait(5)
                raise self._exited()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = json.loads(line)
                if message.get("event") == "listen":
                    self.ports[message["socket"]] = int(message["port"])

    def _exited(self) -> WorkerdError:
        assert self._process is not None
        return WorkerdError(f"workerd exited with {self._process.returncode}\n{self.log()}")

    def log(self) -> str:
        """The tail of workerd's output (its config errors and the Workers' console)."""
        if self._log is None or not self._log.exists():
            return ""
        return self._log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        process, self._process = self._process, None
        if process is not None:
            terminate(process)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> LocalEdge:
        return self.start()

    # -- what tests read ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['control']}"

    def _control(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.control_url, timeout=5)
        return self._http

    def records(self, channel: str) -> list[dict[str, Any]]:
        """What the recorder holds: `dispatches` (namespace get() calls) or `events`."""
        response = self._control().get(f"/{channel}")
        response.raise_for_status()
        return response.json()

    def clear(self, channel: str) -> None:
        self._control().delete(f"/{channel}").raise_for_status()

    def object_folder(self, class_name: str) -> Path:
        """Where workerd keeps the objects of `class_name` (with `objects_dir`)."""
        if self.objects_dir is None:
            raise WorkerdError("the Durable Objects are kept in memory: give objects_dir")
        return self.objects_dir / _unique_key(_safe(class_name, "class name"))
