#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
doc: Decompress a gzip file; the output is named as the input without its .gz.
requirements:
  InlineJavascriptRequirement: {}
baseCommand: [gzip, -dc]
stdout: $(inputs.input.basename.replace(/\.gz$/, ""))
inputs:
  input:
    type: File
    doc: The .gz file to decompress.
    inputBinding:
      position: 1
outputs:
  decompressed:
    type: stdout
    doc: The decompressed file.
