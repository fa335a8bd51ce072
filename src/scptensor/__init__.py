"""placeholder package initialiser; filled by its face."""
