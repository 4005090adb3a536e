"""The storage boundary's one error type: what went wrong, with the URL's password hidden."""


class StorageError(Exception):
    """A storage URL that cannot be used, a database that cannot be reached or read."""
