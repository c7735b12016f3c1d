#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
doc: Compress a file with gzip into <name>.gz.
baseCommand: [gzip, -c]
stdout: $(inputs.input.basename).gz
inputs:
  input:
    type: File
    doc: The file to compress.
    inputBinding:
      position: 1
  level:
    type: int
    default: 6
    doc: Compression level, 1 (fastest) to 9 (smallest).
    inputBinding:
      position: 0
      prefix: "-"
      separate: false
outputs:
  compressed:
    type: stdout
    doc: The compressed file.
