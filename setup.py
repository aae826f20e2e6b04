"""Build script: the pure-Python package always installs; the Cython speedups are built when a
compiler and Cython are available (see fastsio/_speedups)."""

from setuptools import setup

setup()
