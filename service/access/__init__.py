"""Who may do what: FastAPI dependencies for staff and vehicles, sessions, CSRF, login throttle."""
