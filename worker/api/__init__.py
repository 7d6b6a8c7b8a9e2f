"""The seeds' own query interfaces over ringlog's rows (DESIGN.md section 6).

- OneUptime-compatible CRUD routes (`/api/incoming-call-log`, `/api/incoming-call-log-item`,
  `/api/call-log`) and the PortSIP-compatible `/api/calllogs`, as FastAPI routers;
- what they stand on, pure: the field allow-lists (`fields`), the request languages
  (`oneuptime_query`, `odata_filter`), the SQL they compile to with bound parameters only
  (`sql`), the JSON values they answer (`values`), API keys and what each may do (`keys`,
  `access`).

Reads run on the store's capped, read-only reader; writes never touch a table: they publish
section 2 events to the input topic and the worker applies them.
"""
