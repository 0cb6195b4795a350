"""The baseline every HTTP bench measures first: a one-line Litestar JSON endpoint, served
by granian with the settings ``wangqian serve`` uses (ASGI, factory off, no access log).

Usage: ``python bench/bare_app.py PORT [WORKERS]`` (loopback only).
"""

from __future__ import annotations

import sys

from litestar import Litestar, get


@get("/", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[hello], debug=False)


def main() -> None:
    from granian import Granian
    from granian.constants import Interfaces

    port = int(sys.argv[1])
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    Granian(
        "bare_app:app",
        address="127.0.0.1",
        port=port,
        workers=workers,
        interface=Interfaces.ASGI,
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
