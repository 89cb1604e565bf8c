"""The HTTP service: FastAPI routes over a :class:`~reclib.serving.service.Service`.

Routes: ``POST /recommend``, ``POST /events``, ``POST /items`` (a new item from its text,
for a TextMappedALS store), ``GET /items/{item_id}/similar``, ``GET /health``, ``GET /metrics`` (Prometheus text) and ``GET /`` (the web page).
Request bodies are pydantic models with ``extra="forbid"`` and strict types, so an unknown
field, a string where a number belongs or malformed JSON is a 422 with the field named; a
request the model cannot answer (k above the eligible items, an unknown item) is a 4xx JSON
error too, never a 500. An event is acknowledged only once it is committed to the log.
"""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import Annotated, Optional, Union

from fastapi import FastAPI, Path, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from .metrics import Metrics
from .service import CannotAddItemsError, ItemExistsError, Service, UnknownItemError

#: Limits that keep one request bounded.
MAX_K = 1000
MAX_BATCH = 1000
MAX_CANDIDATES = 10_000
MAX_TEXT = 4000

Id = Union[StrictInt, Annotated[str, Field(min_length=1, max_length=128)]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RecommendRequest(_Strict):
    """A top-k request for one user (known, new, or unknown to training)."""

    user_id: Id
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    exclude_seen: bool = True
    candidates: Optional[Annotated[list[Id], Field(min_length=1, max_length=MAX_CANDIDATES)]] = None


class Event(_Strict):
    """One interaction: ``weight`` adds to the user's stored value for the item."""

    user_id: Id
    item_id: Id
    weight: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] = 1.0
    timestamp: Optional[Annotated[float, Field(ge=0, le=1e11, allow_inf_nan=False)]] = None


class EventBatch(_Strict):
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_BATCH)]


class NewItem(_Strict):
    """An item to add: its vector comes from ``text`` through the store's text map."""

    item_id: Id
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    title: Optional[Annotated[str, Field(max_length=512)]] = None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def _route_of(path: str) -> str:
    if path.startswith("/items/") and path.endswith("/similar"):
        return "/items/{item_id}/similar"
    return path if path in ("/", "/recommend", "/events", "/items", "/health",
                            "/metrics") else "other"


class _Timing:
    """ASGI middleware that counts and times every HTTP request (cheaper than BaseHTTP)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe_request(scope["method"], _route_of(scope["path"]), status[0],
                                         time.perf_counter() - start)


def create_app(service: Service) -> FastAPI:
    """The FastAPI application serving ``service``."""
    metrics = Metrics()
    page = resources.files("reclib.serving").joinpath("static/index.html").read_text("utf-8")
    app = FastAPI(title="reclib serving", version="1",
                  description="Recommendations, durable events and online fold-in.")
    app.state.service, app.state.metrics = service, metrics

    @app.post("/recommend")
    async def recommend(request: RecommendRequest):
        """Top-k items for a user; ``source`` says whether the model or popularity answered."""
        try:
            return JSONResponse(service.recommend(request.user_id, request.k,
                                                  request.exclude_seen, request.candidates))
        except UnknownItemError as err:
            return _error(422, f"candidates: {err.args[0]}")
        except ValueError as err:
            return _error(422, str(err))

    @app.post("/events")
    async def events(batch: EventBatch):
        """Log events durably, then fold them into the users' vectors."""
        try:
            rows = service.check_events([e.model_dump() for e in batch.events])
        except UnknownItemError as err:
            return _error(422, err.args[0])
        if service.log is not None:
            seqs = await asyncio.wrap_future(service.log.append(rows))
        else:
            seqs = []
        seconds = service.apply(rows)
        metrics.events += len(rows)
        metrics.foldin.observe(seconds)
        return JSONResponse({"accepted": len(rows), "seq": seqs, "durable": service.log is not None,
                             "foldin_ms": seconds * 1e3})

    @app.post("/items", status_code=201)
    async def add_item(item: NewItem):
        """Add an item from its text; it is durable and searchable when this returns."""
        try:
            service.check_new_item(item.item_id)
            vector = await asyncio.to_thread(service.item_vector_from_text, item.text)
            item_id = service.check_new_item(item.item_id)   # again: no await since here
        except ItemExistsError as err:
            return _error(409, err.args[0])
        except (CannotAddItemsError, ValueError) as err:
            return _error(422, str(err))
        service.pending_items.add(str(item_id))
        try:
            if service.log is not None:
                await asyncio.wrap_future(service.log.append_items(
                    [(item_id, item.title, item.text, vector)]))
        finally:
            service.pending_items.discard(str(item_id))
        index = service.add_item(item_id, vector, item.title)   # no await since the discard
        return JSONResponse({"item_id": item_id, "index": index, "n_items": service.n_items,
                             "durable": service.log is not None}, status_code=201)

    @app.get("/items/{item_id}/similar")
    async def similar(item_id: Annotated[str, Path(min_length=1, max_length=128)],
                      k: Annotated[int, Query(ge=1, le=MAX_K)] = 10):
        """Items of highest cosine with the item's vector."""
        if k > service.n_items - 1:
            return _error(422, f"k == {k}, must be <= {service.n_items - 1}")
        try:
            return JSONResponse(service.similar(item_id, k))
        except UnknownItemError as err:
            return _error(404, err.args[0])

    @app.get("/health")
    async def health():
        return JSONResponse(service.health())

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus():
        text = metrics.render({"reclib_uptime_seconds": ("Seconds since start.",
                                                         round(time.time() - metrics.started, 3)),
                               "reclib_replayed_events": ("Events replayed from the log at start.",
                                                          service.replayed)})
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index_page():
        return HTMLResponse(page)

    app.add_middleware(_Timing, metrics=metrics)
    return app
