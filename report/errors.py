"""The one error type the report raises for problems a user can fix."""


class ReportError(Exception):
    """Unknown sweep, nothing finished yet, unreadable artifacts; the message says which."""
