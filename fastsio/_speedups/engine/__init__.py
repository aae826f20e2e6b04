"""The compiled twins of fastsio/engine/session.py and transports.py (``session``,
``transports``), in a package of the same shape as fastsio.engine so that the session's relative
import of ``.transports`` finds the compiled transports beside it. ``fastsio._impl`` picks them.
"""
