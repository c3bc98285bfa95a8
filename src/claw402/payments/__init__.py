"""x402 payments: the gateway's paywall, its configuration per environment, and the client.

Import the modules (`payments.paywall`, `payments.config`, ...) directly: this package keeps
its own import free of the x402 SDK so that reading configuration stays cheap.
"""
