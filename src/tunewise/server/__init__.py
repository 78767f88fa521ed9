"""HTTP layer (FastAPI): routes, auth and OpenAI shapes, with no logic of its own.

The engines it exposes live elsewhere: serving in `tunewise.serve`, jobs in `tunewise.jobs`.
"""
