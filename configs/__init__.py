"""Experiment configs: one file per experiment, `get_config(variant)` returns a ConfigDict."""
