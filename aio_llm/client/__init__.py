"""The client: ``AsyncLLMClient``, its streams and fan-out, and the blocking ``LLMClient``.

Its public names are exported by ``aio_llm``.
"""
