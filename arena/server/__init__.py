"""The arena server: websocket play for agents and people, matchmaking, spectators, HTTP API."""
