"""Scheduled tasks: cron in a task's time zone, recurrence, catch-up and the due-work timer."""
