"""The asyncio server: one connection layer running every protocol's state machine, HTTP routes and health."""
