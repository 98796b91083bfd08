"""Logging: what aio_llm says through the standard ``logging`` module, and the switch.

aio_llm logs under the ``aio_llm`` logger and its children and, like any library, adds
no handler of its own: configure ``logging`` as usual, or set one environment variable,
as with the official SDKs' ``OPENAI_LOG``::

    LLM_LOG=debug    # or info, warning, error, off

which attaches one stderr handler to the ``aio_llm`` logger at that level when aio_llm is
imported (``configure()`` does the same from code).

Levels:

- ``DEBUG`` (``aio_llm.http``): one line per HTTP request sent and one per response or
  failure: method, URL, status, time taken and the provider's request id. Never an API
  key (headers are not logged; a key in a URL is masked). Message content only when
  content capture is on, by the same switches as for spans: ``LLM_CAPTURE_CONTENT=1`` or
  ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (or ``configure(content=True)``);
  then the request and response bodies are added.
- ``INFO``: retries (``aio_llm.retry``), circuit breaker transitions (``aio_llm.circuit``),
  fallbacks (``aio_llm.fallback``) and rate-limit waits (``aio_llm.ratelimit``).
- ``WARNING``: something is degraded (Redis unreachable, a model without a price).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

__all__ = ["CONTENT_ENV", "LEVEL_ENV", "configure", "content_enabled"]

LEVEL_ENV = "LLM_LOG"
"""The environment variable naming aio_llm's log level (``debug``, ``info``, ...)."""
CONTENT_ENV = ("LLM_CAPTURE_CONTENT", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
"""Either set to ``1``/``true`` adds message content to the DEBUG lines of ``aio_llm.http``."""

FORMAT = "[%(asctime)s %(levelname)s %(name)s] %(message)s"

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "off": logging.CRITICAL + 1,
}
_TRUE = {"1", "true", "yes", "on"}

root = logging.getLogger("aio_llm")
http = logging.getLogger("aio_llm.http")
retry = logging.getLogger("aio_llm.retry")
circuit = logging.getLogger("aio_llm.circuit")
fallback = logging.getLogger("aio_llm.fallback")
ratelimit = logging.getLogger("aio_llm.ratelimit")

_content = False
_handler: logging.Handler | None = None


def content_enabled() -> bool:
    """Whether DEBUG lines may carry message content."""
    return _content


def configure(
    level: str | int | None = None, *, content: bool | None = None, stream: TextIO | None = None
) -> None:
    """Send aio_llm's logs at ``level`` and above to ``stream`` (stderr).

    ``level`` is a name (``"debug"``, ``"info"``, ``"warning"``, ``"error"``, ``"off"``)
    or a ``logging`` level; ``None`` changes only ``content``. Calling it again replaces
    the handler it added before; handlers you attached yourself are left alone.
    """
    global _content, _handler
    if content is not None:
        _content = content
    if level is None:
        return
    if isinstance(level, str):
        key = level.strip().lower()
        if key not in _LEVELS:
            from .errors import ConfigurationError

            raise ConfigurationError(
                f"unknown log level {level!r}: use one of {', '.join(sorted(_LEVELS))}"
            )
        number = _LEVELS[key]
    else:
        number = int(level)
    if _handler is not None:
        root.removeHandler(_handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(number)
    _handler = handler


def configure_from_env(environ: Mapping[str, str] | None = None) -> None:
    """Apply ``LLM_LOG`` and the content switches; an unknown level is reported, not raised."""
    env = os.environ if environ is None else environ
    content = any(env.get(var, "").strip().lower() in _TRUE for var in CONTENT_ENV)
    level = env.get(LEVEL_ENV, "").strip()
    try:
        configure(level or None, content=content)
    except ValueError as exc:  # a typo in an environment variable must not break imports
        configure("warning")
        root.warning("%s; %s is ignored", exc, LEVEL_ENV)
