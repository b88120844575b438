"""Cost accounting: per-turn usage copied from the sessions into the central DB, and budgets."""
