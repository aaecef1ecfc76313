"""Speech recognition: model registry, the Whisper engine, the shared inference worker, partial agreement."""
