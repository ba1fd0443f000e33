"""Console-script entry points (thin: parse arguments, call a library)."""
