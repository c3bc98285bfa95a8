"""Lifecycle events, in one home: what happened to each request, in every runtime.

- `kinds`: every event kind (dispatch and payment steps); the dispatch Worker's come from here
  (`claw402.cloudflare.dispatcher.kinds_module`).
- `compact`: the record every runtime emits and the flat tuple the gateway queues instead.
- `rows`: how a request's events become one row of the events table, and back.
- `schema`, `store`: the events table and its reads and writes (`EventStore`).
- `sink`, `writer`: the gateway's queue and the child process that writes it.
- `edge`: the one way a batch from the dispatch Worker is checked and stored.

`kinds` and `compact` import no SQLAlchemy: runtime-neutral code may use them. Importing this
package imports none of its modules.
"""
