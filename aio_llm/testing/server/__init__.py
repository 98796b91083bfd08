"""``FakeLLMServer``: a real HTTP server on loopback speaking the providers' wire formats.

Its public names are exported by ``aio_llm.testing``.
"""
