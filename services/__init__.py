"""Sala's services: auth, rooms and the WebSocket gateway, plus the code they share."""
