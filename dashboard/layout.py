"""How the pages place charts: each figure with the one-line caption that says what to look
for (`charts.CAPTIONS`) under it, alone or two side by side."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import charts


def chart(fig: go.Figure, caption_key: str, key: str) -> None:
    """One chart, full width, its caption under it; `key` keeps the widget across reruns."""
    st.plotly_chart(fig, width="stretch", key=key)
    st.caption(charts.CAPTIONS[caption_key])


def chart_pair(*pair: tuple[go.Figure, str, str]) -> None:
    """Two (figure, caption key, widget key) charts side by side (or one, in the left half)."""
    for column, shown in zip(st.columns(2), pair):
        with column:
            chart(*shown)
