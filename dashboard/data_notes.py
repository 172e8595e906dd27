"""What reading a file of one's own changed, shown where the file is used.

The engine's reader notes each change it makes to a file (`flcore.data.files.reading_notes`: the
separator it found, rows left out, cells filled, columns one-hot encoded, dates read as days),
and the CLI prints them. New run shows them under the split preview once a file is chosen, and
the Run page under its header, so nobody trains on a file without seeing how it was read. A
run whose file was deleted says so instead.
"""

from __future__ import annotations

import os

import streamlit as st

from dashboard.access import plain
from flcore import settings as server_settings
from flcore.config import ConfigError, ExperimentConfig
from flcore.data.errors import DataFileError
from flcore.data.files import reading_notes


@st.cache_data(show_spinner=False, max_entries=32)
def _notes(config_json: str, version: tuple[int, int]) -> tuple[str, ...] | str:
    """The notes (or why the file cannot be read, a sentence) of one version (size, mtime) of the file."""
    try:
        return reading_notes(ExperimentConfig.from_json(config_json), server_settings.current())
    except (DataFileError, ConfigError) as err:
        return str(err)


def show(config: ExperimentConfig, gone: str = "") -> None:
    """An st.info list of how the data file of `config` was read (nothing when reading changed
    nothing, or the dataset is not a file); `gone`, when given, is said if the file is gone."""
    if config.dataset != "file" or not config.data_file:
        return
    try:
        stat = os.stat(config.data_file)
    except OSError:
        if gone:
            st.warning(gone, icon=":material/draft:")
        return
    notes = _notes(config.to_json(), (stat.st_size, stat.st_mtime_ns))
    if isinstance(notes, str):
        if gone:
            st.warning(plain(notes), icon=":material/draft:")
    elif notes:
        st.info("**How the file was read**\n" + "".join(f"\n- {plain(n[0].upper() + n[1:])}" for n in notes), icon=":material/table:")
