"""Gradio, imported with its analytics off unless the environment says otherwise: every module
that uses Gradio imports it from here."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

__all__ = ["gr"]
