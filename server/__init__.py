"""autolr.server: the tuning service (FastAPI app, durable job store, auth, metrics).

Run it with ``autolr serve`` or ``python -m autolr.server``; build an app in code with
``autolr.server.app.create_app(Settings(...))``. Importing this package has no side effects: no
settings are read and no engine is created until `create_app` runs.
"""
