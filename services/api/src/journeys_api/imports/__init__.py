"""Clinic events imported from CSV files: the file's rules (`rows.py`, pure), and what makes
each accepted row a patient event."""
