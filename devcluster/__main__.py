"""`python -m devcluster up|down|status|build [--state-dir DIR] [--nodes N]`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from devcluster.build import BuildError, build, build_tools
from devcluster.cluster import down, status, up
from devcluster.processes import StartError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status", "build"))
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("DEVCLUSTER_DIR", ".devcluster")),
                        help="folder for kubeconfig, PKI, logs and pids (default .devcluster)")
    parser.add_argument("--nodes", type=int, default=int(os.environ.get("DEVCLUSTER_NODES", "3")),
                        help="number of kwok fake nodes (default 3)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build()
            build_tools()
        elif args.command == "up":
            up(args.state_dir, nodes=args.nodes)
        elif args.command == "down":
            down(args.state_dir)
        else:
            return status(args.state_dir)
    except (BuildError, StartError, TimeoutError) as exc:
        print(f"devcluster: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
