"""Contract orders: create, issue, scan, sign, seal, complete, void, expire."""
