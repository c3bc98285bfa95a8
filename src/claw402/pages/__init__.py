"""The pages people read: the gateway's catalogue, a tenant's page and the paywall page."""
