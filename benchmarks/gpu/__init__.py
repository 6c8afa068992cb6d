"""The GPU suite in one command: stage its inputs here in pieces, unstage and run them on a GPU machine
(docs/gpu.md)."""
