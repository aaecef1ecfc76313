"""Per-call pipeline: a call session turning audio frames into partials and finals, and the engine that builds sessions."""
