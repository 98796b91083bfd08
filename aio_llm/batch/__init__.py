"""Batch jobs: provider Batch APIs at the batch discount, and durable JSONL jobs.

``client.gather(requests, via="batch")`` (or ``client.batch(...)``) sends
requests through the OpenAI Batch API or Anthropic's Message Batches and
returns results in input order, like ``gather``. ``client.batch_submit(...)``
returns a ``BatchJob`` whose ``id`` finds it again in another process with
``client.batch_resume(id)``. ``run_jsonl`` (``aio-llm batch run``) runs a
JSONL file of requests, live or through a Batch API, resumably.
"""

from __future__ import annotations

from ._job import BatchJob, BatchProgress, BatchStatistics
from ._jsonl import JobSummary, run_jsonl
from ._store import BatchStore, default_store_path
from ._wire import ANTHROPIC_LIMITS, OPENAI_LIMITS, Limits

__all__ = [
    "ANTHROPIC_LIMITS",
    "BatchJob",
    "BatchProgress",
    "BatchStatistics",
    "BatchStore",
    "JobSummary",
    "Limits",
    "OPENAI_LIMITS",
    "default_store_path",
    "run_jsonl",
]
