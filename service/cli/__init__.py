"""`python -m service ...`: the command line."""
