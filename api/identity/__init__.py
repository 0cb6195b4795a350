"""Identity: citizens and staff, login sessions, SMS codes, real-name and face checks."""
