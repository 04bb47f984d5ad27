"""Importable applications that tests run for real, e.g. under uvicorn in a subprocess."""
