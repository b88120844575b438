"""Routing: resolve the entity model for an inbound event and write it into the right sessions."""
