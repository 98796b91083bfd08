"""Retry: the middleware, ``RetryExecutor``, the backoff strategies and the retry budget.

Its public names are exported by ``aio_llm.middleware``.
"""
