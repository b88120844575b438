"""Channel adapters: turn platform events into inbound events and deliver replies back."""
