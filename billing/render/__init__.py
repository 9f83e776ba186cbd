"""Outputs for finance: PDF invoices and CSV files. Writers take records and a folder, nothing else."""
