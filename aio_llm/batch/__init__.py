"""Batch jobs: provider Batch APIs at the batch discount, and durable JSONL jobs.

``client.gather(requests, via="batch")`` (or ``client.batch(...)``) sends
requests through the OpenAI Batch API or Anthropic's Message Batches and
returns results in input order, like ``gather``. ``client.batch_submit(...)``
returns a ``BatchJob`` whose ``id`` finds it again in another process with
``client.batch_resume(id)``. ``run_jsonl`` (``aio-llm batch run``) runs a
JSONL file of requests, live or through a Batch API, resumably.
"""

import typing

from .._exports import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from ._job import BatchJob as BatchJob
    from ._job import BatchProgress as BatchProgress
    from ._job import BatchStatistics as BatchStatistics
    from ._jsonl import JobSummary as JobSummary
    from ._jsonl import run_jsonl as run_jsonl
    from ._store import BatchStore as BatchStore
    from ._store import default_store_path as default_store_path
    from ._wire import ANTHROPIC_LIMITS as ANTHROPIC_LIMITS
    from ._wire import OPENAI_LIMITS as OPENAI_LIMITS
    from ._wire import Limits as Limits

__all__, __getattr__, __dir__ = _lazy_exports(__name__)
