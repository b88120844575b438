"""The ``nanoclaw`` command line."""
