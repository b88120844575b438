"""The central database: engine, entity models, repositories and migrations."""
