"""`python -m tests.control_plane_server`: a control-plane server process for restart tests.

The same app `tunewise server` runs, with the test stand-in policy and one offered model, so a test
can SIGKILL the whole server process and start a new one on the same workspace.
"""

from __future__ import annotations

import argparse


def main() -> None:
    import uvicorn

    from tests.control_plane_support import StandInPolicy
    from tunewise.server.app import create_app
    from tunewise.server.config import ServerConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True, help="the tiny model directory, offered as 'tiny'")
    parser.add_argument("--cpu-slots", type=int, default=1)
    args = parser.parse_args()
    config = ServerConfig.model_validate({
        "workspace": args.workspace, "models": {"tiny": args.model}, "tick_seconds": 0.2,
        "jobs": {"checkpoint_every_steps": 2, "retry_backoff_seconds": 0.5}})
    app = create_app(config, policy=StandInPolicy(cpu_slots=args.cpu_slots))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
