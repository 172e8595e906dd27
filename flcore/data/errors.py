"""What goes wrong when a dataset is read, as one exception type whose message says what to do."""


class DatasetUnavailable(RuntimeError):
    """The dataset cannot be read or fetched; the message says what to do."""


class DataFileError(DatasetUnavailable):
    """A file of one's own (`dataset='file'`) that cannot be used as it is; the message names the
    file and the column, line or array that is wrong, `field` the setting a form shows it under."""

    def __init__(self, message: str, field: str = "data_file") -> None:
        super().__init__(message)
        self.field = field
