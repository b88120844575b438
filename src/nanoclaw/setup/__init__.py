"""Onboarding: ``nanoclaw setup`` (what ``bash nanoclaw.sh`` hands over to after the venv exists)."""
