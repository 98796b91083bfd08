"""Rate limiting: the middleware, its GCRA buckets and the providers' rate-limit headers.

Its public names are exported by ``aio_llm.middleware``.
"""
