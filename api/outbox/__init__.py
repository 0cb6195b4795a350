"""The transactional outbox: messages written in the same transaction as the change that
causes them, delivered later by a worker with retries, and a delivery log for staff."""
