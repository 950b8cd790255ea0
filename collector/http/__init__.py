"""The collector's HTTP plumbing: the aiohttp application and its middlewares (errors, request
limits, authentication, rate limits), the error type handlers raise, JSON bodies and query
parameters, the web pages, the OpenAPI document and the Prometheus metrics. Nothing here knows
what a health report or a backup means; feature packages hang their routes on the app it builds.
"""
