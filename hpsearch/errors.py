"""The project's root exception type. The CLI shows any of these as one line and exits 2."""


class HpsearchError(Exception):
    """Something the user asked for cannot be done; the message says what and why."""


class StudyNotFound(HpsearchError):
    pass
