"""Adapters to other engines; each one needs its optional extra (``aio_llm.integrations.ray``)."""
