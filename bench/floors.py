"""The raw-client floors of scenario 1: the same DynamoDB calls a context load makes, sent by a
bare botocore client (DynamoDB direct) and by a bare ``amazondax`` client (DAX), with none of the
app around them — no PynamoDB, no routing, no decoding, no JSON.

The calls are recorded from the app itself (:func:`recorded_calls` wraps the routed connection's
``_make_api_call`` for one load), so the floor follows whatever read shape the app uses today and
the ratio "app CPU / floor CPU" is the app's own overhead over the clients it cannot avoid.
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator



@dataclass(frozen=True)
class Call:
    operation: str
    kwargs: dict
    route: str  # the route the app meant for it (dynamo.ROUTE_*)


@contextmanager
def recorded_calls() -> Iterator[list[Call]]:
    """Record every call the routed connection makes in the block (this process, all threads)."""
    from sessions_app import dynamo

    calls: list[Call] = []
    original = dynamo.RoutedConnection._make_api_call

    def recording(self, operation_name, operation_kwargs):
        calls.append(Call(operation_name, copy.deepcopy(operation_kwargs),
                          self.route_for(operation_name, operation_kwargs)))
        return original(self, operation_name, operation_kwargs)

    dynamo.RoutedConnection._make_api_call = recording
    try:
        yield calls
    finally:
        dynamo.RoutedConnection._make_api_call = original


class Floors:
    """A bare botocore DynamoDB client and a bare amazondax client, built like the app builds its
    own (same endpoint, region, timeouts), replaying recorded calls."""

    def __init__(self, *, dynamodb_endpoint: str, dax_endpoints: list[str], region: str, timeout: float) -> None:
        import botocore.session
        from amazondax import AmazonDaxClient
        from botocore.config import Config

        config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1})
        self.boto = botocore.session.get_session().create_client(
            "dynamodb", endpoint_url=dynamodb_endpoint, region_name=region, config=config)
        self.dax = AmazonDaxClient(endpoints=dax_endpoints, region_name=region, config=config)

    def close(self) -> None:
        self.dax.close()
        self.boto.close()

    def replay(self, calls: list[Call]) -> tuple[float, float]:
        """Send ``calls`` once, each by the client of the route the app meant for it (DAX calls
        by amazondax, everything else by botocore); (wall ms, CPU seconds) of the set. The DAX
        client rewrites requests in place, so each is copied first, outside the timed section."""
        from botocore import xform_name  # "BatchGetItem" -> "batch_get_item", as botocore names methods

        from sessions_app.dynamo import ROUTE_DAX

        methods: list[tuple[Callable, dict]] = [
            (getattr(self.dax if c.route == ROUTE_DAX else self.boto, xform_name(c.operation)), copy.deepcopy(c.kwargs))
            for c in calls
        ]
        cpu0, t0 = time.process_time(), time.perf_counter()
        for method, kwargs in methods:
            method(**kwargs)
        return (time.perf_counter() - t0) * 1000, time.process_time() - cpu0
