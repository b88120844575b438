"""Admin operations shared by chat commands, the ``nanoclaw`` CLI and admin-scoped agents."""
