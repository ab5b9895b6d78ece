"""Telemetry: log context and formats, Prometheus metrics, OpenTelemetry spans."""
