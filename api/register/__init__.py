"""The property register (楼盘表): developer companies, projects, buildings and their
surveyed units, sale permits, restrictions on units, and resale titles.

``service`` writes it, ``survey`` imports survey files, ``queries`` is what other contexts
read of it (typed results, never its tables)."""
