"""Source CRMs to pull from (``crm/sources/*.yaml``) and systems our changes go to
(``crm/subscribers.yaml``). Secrets are never in the files: they name environment variables.
A mistake is refused with ``file:line:col: key: what was expected``, like mapping files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crm_sync.mapping import (
    HISTORY_FIELDS,
    HistoryMapping,
    Mapping,
    MappingError,
    SourceMapping,
    _position,
    load_mapping,
    read_yaml_file,
)
from ivr.core.yamlfile import Loaded


class ConfigError(MappingError):
    """A source or subscriber file that cannot be used (file:line:col: what was expected)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Auth(_Strict):
    """``header: <scheme> <token>``, the token from the environment variable ``env``."""

    header: str = "Authorization"
    scheme: str = Field(default="Bearer", description='"" sends the bare token')
    env: str = Field(description="environment variable holding the token")


class Paging(_Strict):
    style: Literal["page", "offset", "cursor"]
    size: int = Field(default=500, ge=1, le=10_000)
    size_param: str | None = "limit"
    param: str | None = Field(default=None, description="default: page / offset / cursor")
    first: int = Field(default=1, ge=0, description="number of the first page (page style)")
    next: str = Field(default="next", description="cursor style: where the body holds the "
                      "next cursor (dotted path); absent or null ends the listing")

    @property
    def param_name(self) -> str:
        return self.param or self.style


class Since(_Strict):
    """Incremental sync: ``param`` is sent with the highest ``field`` value committed so far
    (inclusive: records at exactly that value come again and are counted unchanged)."""

    param: str
    field: str


class Endpoint(_Strict):
    kind: Literal["customers", "incidents", "interactions"] = "customers"
    path: str
    records: str = Field(default="data", description='dotted path of the list ("" = the body)')
    params: dict[str, str] = Field(default_factory=dict)
    paging: Paging
    since: Since | None = None
    mapping: str | dict[str, Any] | None = Field(
        default=None, description="a file in crm/mappings/, or the mapping inline; "
        "default: crm/mappings/ for this source and kind, else our own field names")


class SourceConfig(_Strict):
    source: str = Field(min_length=1, max_length=64)
    base_url: str
    auth: Auth | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0, le=300)
    retries: int = Field(default=5, ge=0, le=20, description="per request")
    max_retry_after: float = Field(default=120.0, ge=0, description="longer waits fail the run")
    every: int | None = Field(default=None, ge=1, description="seconds between worker syncs")
    endpoints: list[Endpoint] = Field(min_length=1)

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/")

    def endpoint(self, kind: str) -> Endpoint:
        for e in self.endpoints:
            if e.kind == kind:
                return e
        raise KeyError(kind)

    def auth_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.auth is not None:
            token = os.environ.get(self.auth.env)
            if not token:
                raise ConfigError(f"source {self.source!r}: environment variable "
                                  f"{self.auth.env} (auth.env) is not set")
            headers[self.auth.header] = (f"{self.auth.scheme} {token}" if self.auth.scheme
                                         else token)
        return headers


class Subscriber(_Strict):
    name: str = Field(min_length=1, max_length=64)
    url: str
    secret_env: str = Field(description="environment variable holding the HMAC secret")
    source: str | None = Field(default=None, description="the source name this system's "
                               "records come in as (never echoed back); default: name")
    timeout: float = Field(default=10.0, gt=0, le=300)
    active: bool = True

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @property
    def echo_source(self) -> str:
        return self.source or self.name

    def secret(self) -> bytes:
        value = os.environ.get(self.secret_env)
        if not value:
            raise ConfigError(f"subscriber {self.name!r}: environment variable "
                              f"{self.secret_env} (secret_env) is not set")
        return value.encode()


class _SubscribersFile(_Strict):
    subscribers: list[Subscriber] = Field(default_factory=list)


def _refuse(path: Path, doc: Loaded, exc: ValidationError) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        pos = _position(doc, loc)
        where = f"{path}:{pos[0]}:{pos[1]}" if pos else f"{path}:1:1"
        dotted = ".".join(str(p) for p in loc) or "(top)"
        lines.append(f"{where}: {dotted}: {err['msg']}")
    return ConfigError("\n".join(lines))


def load_source(path: Path) -> SourceConfig:
    doc = read_yaml_file(path, "a source file", ConfigError)
    data = doc.data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1:1: expected a mapping with base_url: and endpoints:")
    try:
        return SourceConfig.model_validate({"source": path.stem, **data})
    except ValidationError as exc:
        raise _refuse(path, doc, exc) from None


def load_sources(folder: Path) -> dict[str, SourceConfig]:
    """Every ``*.yaml`` of ``folder`` (none if it does not exist), by source name."""
    out: dict[str, SourceConfig] = {}
    files: dict[str, Path] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.y*ml")):
            config = load_source(path)
            if config.source in out:
                raise ConfigError(f"{path}: source {config.source!r} is already defined by "
                                  f"{files[config.source]}")
            out[config.source] = config
            files[config.source] = path
    return out


def load_subscribers(path: Path) -> list[Subscriber]:
    """``crm/subscribers.yaml``; a missing file means no subscribers."""
    if not path.exists():
        return []
    doc = read_yaml_file(path, "the subscriber file", ConfigError)
    data = doc.data
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1:1: expected a mapping with subscribers:")
    try:
        parsed = _SubscribersFile.model_validate(data)
    except ValidationError as exc:
        raise _refuse(path, doc, exc) from None
    names = [s.name for s in parsed.subscribers]
    for n, name in enumerate(names):
        if name in names[:n]:
            pos = _position(doc, ("subscribers", n, "name"))
            where = f"{path}:{pos[0]}:{pos[1]}" if pos else str(path)
            raise ConfigError(f"{where}: subscribers.{n}.name: {name!r} is listed twice")
    return parsed.subscribers


def endpoint_mapping(crm_dir: Path, config: SourceConfig, endpoint: Endpoint,
                     configured: Any) -> Mapping:
    """The mapping an endpoint's records go through: its own file or inline mapping, else
    ``configured.get(source, kind)`` (``config.Mappings``: crm/mappings/ or our field names)."""
    spec = endpoint.mapping
    if spec is None:
        found: Mapping = configured.get(config.source, endpoint.kind)
        return found
    if isinstance(spec, str):
        path = crm_dir / "mappings" / spec
        mapping = load_mapping(path)
        if mapping.source != config.source or mapping.kind != endpoint.kind:
            raise ConfigError(f"{path}: maps {mapping.kind} of {mapping.source!r}, not "
                              f"{endpoint.kind} of {config.source!r}")
        return mapping
    data = {"source": config.source, "kind": endpoint.kind, **dict(spec)}
    try:
        if endpoint.kind in HISTORY_FIELDS:
            return HistoryMapping.model_validate(data)
        return SourceMapping.model_validate(data)
    except (ValidationError, ValueError) as exc:
        raise ConfigError(f"source {config.source!r}, {endpoint.kind} endpoint: bad inline "
                          f"mapping: {exc}") from None
