"""The dashboard's one user-facing error: the command prints it on one line and exits 2."""


class DashboardError(Exception):
    """Cannot serve: the address is taken or invalid, or there is no store to show."""
