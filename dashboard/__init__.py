"""`sweep dashboard`: a live web view of the store's sweeps, served locally by uvicorn.

It reads only through the storage interface (store/protocol.py); the sweep-level panels come from
report/panels.py, shared with `sweep report`. Every script and style it needs is served by itself.
"""
