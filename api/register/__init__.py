"""The property register (楼盘表): developer companies, projects, buildings and their
surveyed units, sale permits, restrictions on units, and resale titles."""
