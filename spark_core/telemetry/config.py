"""Telemetry settings: :class:`TelemetryConfig`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Sequence

from spark_core.errors import SparkError

__all__ = ["TelemetryConfig", "TelemetryConfigError", "BACKENDS"]

BACKENDS = ("memory", "sqlite", "postgresql", "otlp")


_OTLP_OPTIONS = ("endpoint", "headers", "service_name", "timeout", "max_records")


class TelemetryConfigError(SparkError, ValueError):
    """A telemetry setting is invalid (unknown backend, bad rate, missing path...)."""


@dataclass(frozen=True)
class TelemetryConfig:
    """How a :class:`~spark_core.telemetry.TelemetryManager` records traces.

    Attributes:
        enabled: Record anything at all.
        backend: ``"memory"`` (dev/tests), ``"sqlite"`` (local production),
            ``"postgresql"`` (shared by processes; extra ``[postgres]``) or ``"otlp"``
            (export to an OpenTelemetry collector; extra ``[otlp]``).
        backend_config: Backend options; sqlite needs ``{"path": "telemetry.db"}``; memory
            takes ``{"max_records": 100000}`` (per kind; the oldest are dropped);
            postgresql needs ``{"dsn": "postgresql://..."}`` and takes ``schema``; otlp
            takes ``endpoint`` (the traces URL), ``headers``, ``service_name`` and
            ``timeout`` (by default from the ``OTEL_EXPORTER_OTLP_*`` environment).
        sampling_rate: Fraction of traces recorded, 0.0-1.0 (decided per trace).
        buffer_size: Records buffered before a batch is handed to the backend.
        export_interval: Seconds after which a partial batch is written anyway (sqlite).
        redact_keys: Extra attribute-name substrings to treat as secrets.
        max_attribute_length: Longer string attributes are truncated.

    Raises:
        TelemetryConfigError: A value is out of range or the backend is unknown.
    """

    enabled: bool = True
    backend: str = "memory"
    backend_config: Mapping[str, Any] = field(default_factory=dict)
    sampling_rate: float = 1.0
    buffer_size: int = 100
    export_interval: float = 1.0
    redact_keys: Sequence[str] = ()
    max_attribute_length: int = 2048

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise TelemetryConfigError(
                f"unknown telemetry backend {self.backend!r}: expected one of {BACKENDS}"
            )
        if not isinstance(self.backend_config, Mapping):
            raise TelemetryConfigError("backend_config must be a mapping")
        object.__setattr__(self, "backend_config", dict(self.backend_config))
        if self.backend == "sqlite":
            path = self.backend_config.get("path")
            if not isinstance(path, str) or not path:
                raise TelemetryConfigError(
                    "sqlite telemetry needs backend_config={'path': '<file>.db'}"
                )
        if self.backend == "postgresql":
            dsn = self.backend_config.get("dsn")
            if not isinstance(dsn, str) or not dsn:
                raise TelemetryConfigError(
                    "postgresql telemetry needs backend_config={'dsn': 'postgresql://...'}"
                )
        if self.backend == "otlp":
            unknown = sorted(set(self.backend_config) - set(_OTLP_OPTIONS))
            if unknown:
                raise TelemetryConfigError(
                    f"unknown otlp option(s) {unknown}: expected {list(_OTLP_OPTIONS)}"
                )
        rate = self.sampling_rate
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float))
            or not 0 <= rate <= 1
        ):
            raise TelemetryConfigError(
                f"sampling_rate must be within 0.0-1.0, got {rate!r}"
            )
        if (
            isinstance(self.buffer_size, bool)
            or not isinstance(self.buffer_size, int)
            or (self.buffer_size < 1)
        ):
            raise TelemetryConfigError(
                f"buffer_size must be a positive integer, got {self.buffer_size!r}"
            )
        interval = self.export_interval
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not math.isfinite(interval)
            or interval <= 0
        ):
            raise TelemetryConfigError(
                f"export_interval must be a positive number of seconds, got {interval!r}"
            )
        if isinstance(self.redact_keys, str):
            raise TelemetryConfigError("redact_keys must be a list of strings")
        object.__setattr__(
            self, "redact_keys", tuple(k.lower() for k in self.redact_keys)
        )
        if (
            not isinstance(self.max_attribute_length, int)
            or self.max_attribute_length < 16
        ):
            raise TelemetryConfigError("max_attribute_length must be an integer >= 16")

    def __repr__(self) -> str:
        # backend_config may hold a DSN with its password or a collector's API key header.
        from spark_core.pgconnect import redact_dsn

        shown = {
            key: (
                redact_dsn(value)
                if key == "dsn" and isinstance(value, str)
                else "***" if key == "headers" else value
            )
            for key, value in self.backend_config.items()
        }
        return (
            f"TelemetryConfig(enabled={self.enabled}, backend={self.backend!r}, "
            f"backend_config={shown!r}, sampling_rate={self.sampling_rate})"
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TelemetryConfig:
        """Build a config from a mapping (e.g. a mission spec's ``telemetry`` section).

        ``db_path`` is accepted as a shorthand for ``backend_config={"path": ...}``; unknown
        keys are errors.

        Raises:
            TelemetryConfigError: Unknown keys or invalid values.
        """
        known = {
            "enabled",
            "backend",
            "backend_config",
            "sampling_rate",
            "buffer_size",
            "export_interval",
            "redact_keys",
            "max_attribute_length",
            "db_path",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise TelemetryConfigError(f"unknown telemetry setting(s) {unknown}")
        values: Dict[str, Any] = {k: v for k, v in data.items() if k != "db_path"}
        if data.get("db_path"):
            values["backend_config"] = {
                **dict(data.get("backend_config") or {}),
                "path": data["db_path"],
            }
        return cls(**values)
