"""`python -m service`: serve on CITELINE_HOST:CITELINE_PORT; `backup DIR` and `restore DIR`.

python -m service                 serve (SIGTERM: drain, then exit 0)
python -m service backup DIR      fetch a consistent backup from the running service
python -m service restore DIR     copy a backup into the empty CITELINE_DATA_DIR (stopped)
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys

from service.config import Settings, load_settings
from service.telemetry import logs, tracing


def serve(settings: Settings) -> None:
    from service.app import create_app
    from service.ops.server import serve as run_server
    from service.serving import check_exposure, server_config

    check_exposure(settings)
    os.umask(0o077)  # the data dir's files: readable by this user only

    # Indexing threads (BM25, Edge writes) compete with the event loop for the GIL; a shorter
    # switch interval bounds how long a request waits for it (see `make bench`).
    sys.setswitchinterval(0.001)
    gc.freeze()  # what start-up allocated lives for the whole run: never rescan it
    gc.set_threshold(50_000, 20, 100)  # fewer full collections, each a pause for every request
    tracing.setup(settings.otel_enabled, settings.otel_capture_content)
    app = create_app(settings)
    run_server(
        server_config(app, settings), drain=app.state.drain, grace_s=settings.shutdown_grace_s
    )
    # Everything is closed: flush what is buffered and leave without the interpreter's own
    # teardown of every loaded library, which takes 0.5-1 s on a busy 2-core host and would
    # push the exit past the grace period + 1 s.
    tracing.shutdown()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    take = commands.add_parser("backup", help="fetch a backup from the running service")
    take.add_argument("dir", type=str, help="a new directory for the backup")
    take.add_argument("--url", help="the service (default: http://CITELINE_HOST:CITELINE_PORT)")
    put = commands.add_parser("restore", help="restore a backup into the empty data dir")
    put.add_argument("dir", type=str, help="a directory written by `backup`")
    args = parser.parse_args(argv)
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    if args.command is None:
        serve(settings)
        return 0
    from service.ops import backup_cli

    if args.command == "backup":
        return backup_cli.fetch(settings, args.dir, args.url)
    return backup_cli.restore(settings, args.dir)


if __name__ == "__main__":
    sys.exit(main())
