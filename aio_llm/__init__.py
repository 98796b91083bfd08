"""aio_llm."""
