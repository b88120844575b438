"""Roles, access checks and the seams where approval flows plug in."""
