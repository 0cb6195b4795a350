"""Supervised funds (预售资金监管): supervised accounts, payment notices, a double-entry
ledger, signed bank webhooks, releases to the developer and refunds to buyers."""
