"""The pure, runtime-agnostic dispatcher core.

Both runtimes (the ASGI gateway and the generated Cloudflare dispatch Worker) implement exactly
these rules; nothing here knows about HTTP frameworks, databases or Cloudflare.
"""
