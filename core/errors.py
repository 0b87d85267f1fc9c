"""supportbot's exceptions. Messages say what to do; HTTP codes are chosen at the edge."""


class SupportbotError(Exception):
    """Base class: a problem the user can fix, with a one-line message."""


class ModelNotFoundError(SupportbotError):
    pass


class ModelLoadError(SupportbotError):
    pass


class InputError(SupportbotError):
    """Bad input from a caller (HTTP 400/422)."""


class PayloadTooLargeError(InputError):
    """Too many or too long texts (HTTP 413)."""


class ConflictError(InputError):
    """The request repeats or contradicts what is stored (HTTP 409)."""


class NotFoundError(SupportbotError):
    """An id that does not exist (HTTP 404)."""


class DatabaseUnavailableError(SupportbotError):
    """The database cannot be reached (HTTP 503)."""
