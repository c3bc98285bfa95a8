"""The self-hosted runtime: one ASGI app that serves every tenant (`402claw serve`)."""
