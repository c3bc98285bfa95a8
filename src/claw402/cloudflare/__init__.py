"""The edge runtime: Cloudflare Workers for Platforms.

One dispatch Worker in front (the gateway's dispatcher, in JavaScript), one user Worker per
tenant in a dispatch namespace (the tenant's data API with its dataset embedded), built from the
templates in `templates/`, run locally under workerd, deployed and rolled back through the
official `cloudflare` SDK with a local history of every upload.
"""
