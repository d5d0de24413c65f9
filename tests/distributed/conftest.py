"""A real Dask cluster for the session: two worker processes on 127.0.0.1."""

from __future__ import annotations

import os
from typing import Any, Iterator

import pytest


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """A ``distributed.Client`` of a ``LocalCluster`` with 2 single-threaded worker processes.

    Where dask is not installed the tests are skipped on a developer's machine; in CI
    (``CI=true``) they fail instead, so they always run there.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"the Dask tests cannot run in CI: {exc}")
        pytest.skip(f"no dask.distributed for these tests: {exc}")
    cluster = LocalCluster(
        processes=True,
        n_workers=2,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # None still serves one on :8787
    )
    client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
