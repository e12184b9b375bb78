"""Switchyard's reverse proxy: canary routing from a Redis-fed snapshot."""
