"""Shared streaming loop for both doors: relay deltas, finish or fail, and always terminate.

A mid-stream failure becomes the door's error frames followed by ``[DONE]``; a client disconnect
cancels the upstream request at once (a watcher task listens for ``http.disconnect``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tollway.api.http import Request, send_chunk
from tollway.core.errors import GatewayError
from tollway.core.pipeline import Outcome, StreamRun
from tollway.core.types import Delta

log = logging.getLogger("tollway.stream")


async def _watch_disconnect(req: Request, task: asyncio.Task[None]) -> None:
    while True:
        msg = await req.receive()
        if msg["type"] == "http.disconnect":
            task.cancel()
            return


async def run_stream(
    req: Request,
    run: StreamRun,
    encode: Callable[[Delta], bytes],
    on_finish: Callable[[Outcome], bytes],
    on_error: Callable[[GatewayError, Outcome], bytes],
) -> None:
    send = req.send
    task = asyncio.current_task()
    assert task is not None
    watcher = asyncio.create_task(_watch_disconnect(req, task))
    try:
        try:
            async for frames in run.frames(encode):
                await send_chunk(send, frames)  # the events of one upstream read, whole frames, one write
        except GatewayError as err:
            log.info("stream failed", extra={"request_id": req.request_id, "code": err.code})
            await send_chunk(send, on_error(err, run.outcome(error=err)), more=False)
            return
        await send_chunk(send, on_finish(run.outcome()), more=False)
    except asyncio.CancelledError:
        if not watcher.done():
            raise
        task.uncancel()
        run.close()
        run.outcome(disconnected=True)  # recorded with the tokens seen so far
        log.info("client disconnected mid-stream; upstream cancelled", extra={"request_id": req.request_id})
    except OSError:
        run.close()
        run.outcome(disconnected=True)
        log.info("client connection lost mid-stream", extra={"request_id": req.request_id})
    finally:
        watcher.cancel()
