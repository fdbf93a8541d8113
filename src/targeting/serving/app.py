"""The model server `targeting serve` runs: an ASGI app (Starlette, under uvicorn) around the logged model.

It speaks MLflow's scoring protocol for tables (`POST /invocations` with `dataframe_split` or
`dataframe_records`, `{"predictions": [...]}` back; `GET /ping`, `/health`, `/version`) and adds what a
server facing other systems needs:
- a request body limit (`TARGETING_MAX_BODY_BYTES`), checked before the body is read whole: 413;
- the data contract's row rules, the batch's own (`requests.answer`), before any feature is computed: a
  request with bad rows is refused with each problem listed (400), an over-long field among them;
- JSON only: a missing or other content type is 415, a body that is not JSON (or nested too deeply to
  parse) 400, a request that takes longer than `TARGETING_REQUEST_TIMEOUT` seconds 504;
- every answer, error or not, is valid JSON, and never carries a stack trace or a server path: an
  unexpected failure is logged by the server and answered with a plain 500;
- fresh history: each request checks (a stat) whether the history committed an add since it was read; if
  so the new state is read beside and swapped in when ready, never half-written.
It has no authentication of its own: bind it to loopback (the default) or put it behind the service's
gateway (TLS, authentication) before binding anything else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from importlib.metadata import version

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from targeting.config import (
    MAX_BODY_BYTES,
    MAX_BODY_ENV,
    MODEL_PATH_ENV,
    REQUEST_TIMEOUT_ENV,
    REQUEST_TIMEOUT_S,
)
from targeting.model.scorer import Scorer
from targeting.serving.pyfunc import open_scorer
from targeting.serving.requests import RequestError, answer, json_records, rows_of

log = logging.getLogger("targeting.serving")


def create_app() -> Starlette:
    """The app for the model saved at `TARGETING_MODEL_PATH` (a local folder `targeting serve` prepared);
    its history answers are ready before the first request."""
    scorer = open_scorer(os.environ[MODEL_PATH_ENV])
    scorer.history.answerer(1)  # load (or build) what answers a request now, not on the first one
    limit = int(os.environ.get(MAX_BODY_ENV) or MAX_BODY_BYTES)
    timeout = float(os.environ.get(REQUEST_TIMEOUT_ENV) or REQUEST_TIMEOUT_S)
    reopening = threading.Lock()

    def reopen() -> None:
        """The history as committed now, swapped in when ready (requests meanwhile use the one before)."""
        try:
            scorer.history = scorer.history.reopened()
        except Exception:  # noqa: BLE001 - the server keeps answering from what it has
            log.exception("reading the history's new commit failed")
        finally:
            reopening.release()

    def fresh_history() -> None:
        """Each request: when the history has committed an add since it was read, read it again beside."""
        if scorer.history.changed() and reopening.acquire(blocking=False):
            threading.Thread(target=reopen, daemon=True).start()

    async def invocations(request: Request) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            return _error(415, f"Content-Type must be application/json (got {kind or 'none'})")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return _error(413, f"the request body is larger than the server's limit of {limit:,} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _error(413, f"the request body is larger than the server's limit of {limit:,} bytes")
        try:
            payload = json.loads(body)
        except RecursionError:
            return _error(400, "the request body is not valid JSON (nested too deeply)")
        except ValueError as exc:
            return _error(400, f"the request body is not valid JSON ({str(exc).splitlines()[0]})")
        fresh_history()
        try:
            records = await asyncio.wait_for(asyncio.to_thread(_answer, scorer, payload), timeout)
        except RequestError as exc:
            return _error(exc.status, exc.message, problems=exc.problems)
        except TimeoutError:
            return _error(504, f"the request took longer than {timeout:g} s")
        return JSONResponse({"predictions": records})

    async def ping(request: Request) -> Response:
        return Response("\n", media_type="application/json")

    async def server_version(request: Request) -> Response:
        return JSONResponse({"targeting": version("targeting")})

    return Starlette(
        routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping),
                Route("/health", ping), Route("/version", server_version)],
        exception_handlers={Exception: _unexpected},
    )  # fmt: skip


def _answer(scorer: Scorer, payload: object) -> list[dict[str, object]]:
    return json_records(answer(scorer, rows_of(payload)))


def _error(status: int, message: str, problems: list[dict[str, object]] | None = None) -> JSONResponse:
    codes = {400: "INVALID_PARAMETER_VALUE", 413: "REQUEST_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
             500: "INTERNAL_ERROR", 504: "TIMEOUT"}  # fmt: skip
    body: dict[str, object] = {"error_code": codes.get(status, "ERROR"), "message": message}
    if problems:
        body["problems"] = problems
    return JSONResponse(body, status_code=status)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("scoring a request failed")  # the trace stays in the server's log
    return _error(500, "the server could not score this request (the cause is in the server's log)")
