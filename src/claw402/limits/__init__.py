"""Per-caller rate limits, tenant quotas and spend caps, quarantine and junk-traffic counts:
runtime-neutral rules (`policy`, `windows`), counters (`counters`: memory or Redis; `usage`:
the database's quota books) and the gateway's limiter (`limiter`)."""
