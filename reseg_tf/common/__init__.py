"""Small helpers every layer may use: progress reporting, user-facing errors."""
