"""Session folders and their two SQLite files: the host's side of the DB-only host↔runner contract."""
