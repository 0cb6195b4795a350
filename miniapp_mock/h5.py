"""The mini program's H5 pages (``miniapp_mock/pages/``), served as static package files.

Mounted at ``/miniapp/`` by the API only when mocks are enabled. The pages talk to the API
(``/api/v1/...``) and to the mock WeChat (``/mock/wechat/login``) over HTTP like the real
mini program would; nothing here imports ``api``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.static_files import create_static_files_router

PAGES_DIR = Path(__file__).parent / "pages"


def pages_router(path: str = "/miniapp") -> Any:
    """A router serving ``index.html``, ``app.js``, ``app.css`` and ``qr-decode.js`` (the
    in-page QR reader for photos) under ``path``."""
    return create_static_files_router(
        path=path,
        directories=[PAGES_DIR],
        html_mode=True,
        include_in_schema=False,
        name="miniapp-pages",
    )
