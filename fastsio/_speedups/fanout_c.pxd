# Augmenting declarations: fastsio/_speedups/fanout_py.py compiled as fastsio._speedups.fanout_c
# (the source is the symlink src/fanout_c.py). Only C types are added here.
import cython

@cython.locals(count=Py_ssize_t, i=Py_ssize_t)
cpdef fanout(sessions, packets, frames)
