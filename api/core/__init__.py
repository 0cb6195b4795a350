"""Cross-cutting pieces every bounded context uses: refusals (``errors``) and the one table
of their HTTP statuses (``problems``), clock, ids, keys, validators, rate limits,
idempotency and request logging."""
