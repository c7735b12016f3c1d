#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
doc: Sleep for a number of seconds (the long run of bench_concurrent.py).
baseCommand: sleep
inputs:
  seconds:
    type: int
    default: 120
    inputBinding:
      position: 1
outputs: []
