"""The exact response cache: the middleware and its memory and Redis backends.

Its public names are exported by ``aio_llm.middleware``.
"""
