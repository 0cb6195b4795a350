"""Cross-cutting pieces every bounded context uses: errors, clock, ids, validators,
idempotency, request logging."""
