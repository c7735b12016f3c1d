cwlVersion: v1.2
class: CommandLineTool
doc: Holds a block of memory for a while.
baseCommand: [python3, -c]
arguments:
  - "import time; block = bytearray($(inputs.mib) * 1024 * 1024); time.sleep(60)"
inputs:
  mib:
    type: int
    default: 300
outputs: []
