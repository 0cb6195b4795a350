"""What anyone may see without logging in: the public building table (楼盘表 coloured by
status) and, later, contract verification. No personal data leaves this context."""
