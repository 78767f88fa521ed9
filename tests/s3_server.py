"""A real S3-compatible server (moto's server mode) on a free localhost port, for object-storage tests.

Import the `s3_endpoint` fixture into a test module; `s3_environment` points boto, and so s3fs, at it.
"""

from __future__ import annotations

import logging
import socket

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3_environment(endpoint: str) -> dict[str, str]:
    """The environment that sends every S3 client in this process and its children to `endpoint`."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint}
