"""Core types shared by every stage: events (incl. Hint and Signal), errors, typed config, the serializer, the event hub."""
