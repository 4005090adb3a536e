"""The storage boundary's one error type: what went wrong, with the URL's password hidden."""


class StorageError(Exception):
    """A storage URL that cannot be used, a database that cannot be reached or read.

    `transient` is set when the cause (a dropped connection, a server restarting) may pass,
    so that a worker can wait for the database instead of giving up."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
