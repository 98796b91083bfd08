"""The circuit breaker: the standalone ``CircuitBreaker``, its middleware and state machine.

Its public names are exported by ``aio_llm.middleware``.
"""
