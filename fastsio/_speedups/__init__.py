"""Compiled twins of the hot paths (Cython), built by setup.py when a C compiler is available.

Do not import these modules directly: ``fastsio._impl`` picks compiled or pure. See README.md here
for how each one is made and kept identical to its pure-Python twin.
"""
