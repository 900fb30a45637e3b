"""Studies behind the numbers in the READMEs (each one a ``make results-<study>`` target).

- :mod:`.long_recording`: long two-speaker recordings built from the demo's test voices.
- :mod:`.chunking`: chunked vs whole-file separation (quality), and memory/speed per chunk length.
- :mod:`.long_audio`: one hour through ``tdanet-separate``: peak memory, wall time, quality.
- :mod:`.measure`: peak resident memory and wall time of a child process.
"""
