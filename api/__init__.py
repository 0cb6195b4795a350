"""The Wangqian HTTP service: the only package that knows HTTP or the database.

Each bounded context (``register``, ``public``, later ``identity``, ``contracts``,
``escrow``) is a folder with ``models``, ``service``, ``routes`` and ``schemas``.
Cross-cutting pieces (errors, clock, idempotency, validators) live in ``api.core``.
"""
