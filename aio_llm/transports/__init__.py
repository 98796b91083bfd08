"""HTTP transports behind one small interface (``HTTPTransport``), and our SSE parser.

The aiohttp and httpx modules load only when their transport is used.
"""

import typing

from .._exports import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from ._create import create_transport as create_transport
    from .aiohttp import AiohttpTransport as AiohttpTransport
    from .base import DEFAULT_MAX_BODY_SIZE as DEFAULT_MAX_BODY_SIZE
    from .base import HTTPTransport as HTTPTransport
    from .base import StreamingHTTPResponse as StreamingHTTPResponse
    from .httpx import HttpxTransport as HttpxTransport
    from .sse import SSEDecoder as SSEDecoder
    from .sse import SSEEvent as SSEEvent

__all__, __getattr__, __dir__ = _lazy_exports(__name__)
