"""What goes wrong when a dataset is read, as one exception type whose message says what to do."""


class DatasetUnavailable(RuntimeError):
    """The dataset cannot be read or fetched; the message says what to do."""
