"""`python -m service.parsing.child MEMORY_BYTES`: the parser process.

It reads requests from stdin and answers on stdout, one length-prefixed JSON frame each (never
pickle: the parent must not run what a compromised parser sends). Its address space is capped
at MEMORY_BYTES before any parser library loads, so a file that makes PDFium allocate without
bound fails with MemoryError (or the process dies) instead of taking the machine's memory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


def _warm_up() -> None:
    """Load every parser library now, so that a file's time limit measures only its parse."""
    import docx
    import pptx
    import pypdf
    import pypdfium2
    import selectolax.lexbor

    del docx, pptx, pypdf, pypdfium2, selectolax


def _serve(conn: Connection) -> None:
    # Imported here, once the address space is capped.
    from service.parsing.dispatch import parse
    from service.parsing.model import Limits, ParseError

    _warm_up()
    conn.send_bytes(b'{"ready": true}')  # the parent's clock starts with the first file
    while True:
        try:
            request: dict[str, Any] = json.loads(conn.recv_bytes())
        except EOFError:
            return
        reply: dict[str, Any]
        try:
            data = Path(request["path"]).read_bytes()
            parsed = parse(data, request["format"], Limits(**request["limits"]))
            reply = {"ok": dataclasses.asdict(parsed)}
        except ParseError as exc:
            reply = {"error": str(exc)}
        except MemoryError:
            reply = {"error": "memory", "exit": True}
        except RecursionError:
            reply = {"error": "the file nests too deeply to be read"}
        except OSError as exc:
            reply = {"error": f"the original could not be read: {exc.strerror or exc}"}
        except Exception as exc:  # a parser library's own failure: the file is at fault
            reply = {"error": f"the file cannot be read: {type(exc).__name__}: {exc}"[:500]}
        reply["max_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        conn.send_bytes(json.dumps(reply).encode())
        if reply.get("exit"):
            return  # a process that hit its memory cap may be in a bad state: start afresh


def main() -> None:
    memory = int(sys.argv[1])
    logging.basicConfig(level=logging.ERROR)  # pypdf reports what it repairs: not ours to log
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # The protocol owns the original stdin/stdout; anything a library prints goes to stderr.
    reader, writer = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    conn_in = Connection(reader, writable=False)
    conn_out = Connection(writer, readable=False)

    class Duplex:
        def recv_bytes(self) -> bytes:
            return conn_in.recv_bytes()

        def send_bytes(self, data: bytes) -> None:
            conn_out.send_bytes(data)

    _serve(Duplex())  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
