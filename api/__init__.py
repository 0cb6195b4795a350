"""The Wangqian HTTP service: the only package that knows HTTP or the database.

``app`` wires everything; ``outside`` builds the clients of the outside world (real or
mock, decided there once); ``tables`` lists every table for the migration tools.
Each bounded context (``register``, ``identity``, ``contracts``, ``escrow``, ``outbox``,
``public``) is a folder with ``models`` (tables), ``schemas`` (msgspec bodies in and out),
``routes`` (Litestar controllers: parse, authorize, call the rules, shape the answer) and
its rules: one ``service`` module, or one module per use case once they outgrow it.
Cross-cutting pieces (refusals and their HTTP statuses, clock, ids, validators,
idempotency, request logs) live in ``api.core``; the engine and migrations in ``api.db``.
"""
