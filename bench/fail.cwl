#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
doc: Writes to stderr, then exits 3 (the failing runs of bench_soak.py).
baseCommand: [sh, -c]
arguments: ["echo 'soak: failing on purpose' >&2; exit 3"]
inputs: []
outputs: []
