"""The top: supportbot assembled. cli.py (the `supportbot` command) and server.py (the ASGI
app: the API of bot/api with the UI of ui/ mounted). Everything else stands below it and
nothing imports it."""
