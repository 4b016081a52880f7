"""Glue between the engines: input files, scenarios, datasets, comparisons and the `cait` CLI."""
