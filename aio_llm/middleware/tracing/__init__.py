"""Telemetry: the OpenTelemetry ``Tracing`` middleware, request statistics, metric sources.

Its public names are exported by ``aio_llm.middleware``.
"""
