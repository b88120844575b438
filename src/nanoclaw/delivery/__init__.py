"""Delivery: read what runners wrote, check it may go there, carry out actions, hand chat rows to adapters."""
