#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
doc: Count the lines, words and bytes of each input file, and their total, into counts.txt.
requirements:
  InitialWorkDirRequirement:
    listing: $(inputs.inputs)
  InlineJavascriptRequirement: {}
baseCommand: wc
stdout: counts.txt
inputs:
  inputs:
    type: File[]
    doc: The text files to count.
    inputBinding:
      position: 1
      valueFrom: $(self.map(function(f) { return f.basename; }))
outputs:
  counts:
    type: stdout
    doc: counts.txt, one line per file (lines, words, bytes, name).
