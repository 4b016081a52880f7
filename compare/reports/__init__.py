"""Figures and Markdown reports of the workflows, one module per workflow."""
