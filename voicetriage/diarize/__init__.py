"""Speaker diarization (the optional ``diarize`` extra): who spoke when, and who is the caller.

    environment  what the extra needs; ``voicetriage setup-diarize``
    campplus     the CAM++ speaker-embedding network as a pyannote Model
    pipeline     pyannote.audio's SpeakerDiarization on registry weights -> pyannote.core.Annotation
    roles        which speaker is the agent and which the caller
    labelling    speaker labels for transcript segments, RTTM
    conversations  two-speaker test calls built from the evaluation kit, with their RTTM
    replay       triage replayed on the caller's side of recordings

Nothing here imports torch or pyannote at module import; :func:`environment.require`
says what to install when they are missing.
"""
