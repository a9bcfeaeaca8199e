"""The HTTP service: payment callback ingress and the read-side views.

One aiohttp application serves the channels' callback endpoints, the bill
lookup, payment history, the growth archive, the aid figures and health.
Each concern lives in its own module with a ``routes(app, ctx)`` function
that ``edustream.http.server`` calls while building the application.
"""
