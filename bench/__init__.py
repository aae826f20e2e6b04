"""fastsio's benchmarks: micro-benchmarks (``pytest bench/ --benchmark-only``) and the end-to-end
comparison with python-socketio and Node's socket.io (``python -m bench``). See bench/README.md."""
