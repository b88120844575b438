"""The agent runner: the program inside each session's sandbox. Its only I/O with the host is two SQLite files."""
