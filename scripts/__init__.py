"""Command-line entry points (absl). Each parses flags and calls one library function."""
