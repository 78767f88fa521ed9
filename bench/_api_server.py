"""The control-plane server process `bench/api_load.py` measures: the same app `tunewise server` runs,
on a given store, with no free training slot (the load is API traffic, not training)."""

from __future__ import annotations

import argparse


def _policy():
    try:
        from tunewise.jobs.policy import load_policy

        return load_policy({"pools": [{"name": "default", "nodes": [{"name": "local", "cpu_slots": 1}]}]})
    except ImportError:  # the scheduler package is not in this build: no job is queued here anyway
        from tests.control_plane_support import StandInPolicy

        return StandInPolicy(cpu_slots=0)


def main() -> None:
    import uvicorn

    from tunewise.server.app import create_app
    from tunewise.server.config import ServerConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = ServerConfig.model_validate({"workspace": args.workspace, "database_url": args.database_url})
    uvicorn.run(create_app(config, policy=_policy()), host="127.0.0.1", port=args.port, log_level="warning",
                backlog=2048)


if __name__ == "__main__":
    main()
