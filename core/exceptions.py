class ApplicationError(Exception):
    """A domain rule was broken; the message tells a person what to do about it."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


class ConflictError(ApplicationError):
    """Somebody else changed the object first (optimistic concurrency)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="conflict")
