"""Sandbox runtimes that run one agent runner per session, and the supervisor that wakes them."""
