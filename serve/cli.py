"""Placeholder replaced by the serve CLI (translate, serve)."""


def add_serve_commands(commands):
    pass
