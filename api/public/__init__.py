"""What anyone may see without logging in: the public building table (楼盘表 coloured by
status) and project list (``buildings``), and contract verification by number and
password (``verification``). No phone or ID number leaves this context; names only masked."""
