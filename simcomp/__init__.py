"""simcomp."""
